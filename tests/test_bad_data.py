"""The bad-data corpus for `train --data` and `predict --input`: every flawed table, source
URI or data contract exits 2 with exactly one `error:` line naming the columns or the problem
and the fix, no traceback, and a byte-identical store."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import invoke, write_policy
from tests.conftest import snapshot as _snapshot
from tests.test_real_data import ALICE, CAROL, IDS, TARGET, new_store, team_table, write_duckdb

Prepare = Callable[[Path], None]


@dataclass
class Case:
    id: str
    args: list[str]
    needles: tuple[str, ...]
    prepare: Prepare | None = None  # writes files into the case's folder
    data: dict[str, Any] | None = None  # a policy with this [data] section instead
    extra: list[str] = field(default_factory=list)


def table(rows: int = 400, label: bool = True) -> pd.DataFrame:
    return team_table(11, rows, label=label)


def parquet(
    name: str, change: Callable[[pd.DataFrame], pd.DataFrame], label: bool = True
) -> Prepare:
    def prepare(folder: Path) -> None:
        change(table(label=label)).to_parquet(folder / name, index=False)

    return prepare


def csv_bytes(name: str, data: Callable[[pd.DataFrame], bytes], label: bool = True) -> Prepare:
    def prepare(folder: Path) -> None:
        (folder / name).write_bytes(data(table(label=label)))

    return prepare


def raw(name: str, data: bytes) -> Prepare:
    def prepare(folder: Path) -> None:
        (folder / name).write_bytes(data)

    return prepare


def duckdb_table(
    name: str, change: Callable[[pd.DataFrame], pd.DataFrame], label: bool = True
) -> Prepare:
    def prepare(folder: Path) -> None:
        from magenta_release.io.sources import write_duckdb as write

        write(change(table(label=label)), folder / "bad.duckdb", name)

    return prepare


def truncated_parquet(folder: Path) -> None:
    buf = io.BytesIO()
    table().to_parquet(buf, index=False)
    (folder / "t.parquet").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def folder_without_parquet(folder: Path) -> None:
    (folder / "exports").mkdir()
    (folder / "exports" / "README.txt").write_text("the export job did not run\n")
    table().to_csv(folder / "exports" / "features.csv", index=False)


def folder_with_mixed_parts(folder: Path) -> None:
    (folder / "parts").mkdir()
    frame = table()
    frame.iloc[:200].to_parquet(folder / "parts" / "part-0.parquet", index=False)
    frame.iloc[200:].assign(age_years="unknown").to_parquet(
        folder / "parts" / "part-1.parquet", index=False
    )


def folder_with_stray_file(folder: Path) -> None:
    (folder / "parts").mkdir()
    table().to_parquet(folder / "parts" / "part-0.parquet", index=False)
    (folder / "parts" / "_SUCCESS").write_text("")  # Spark's marker: skipped, as pyarrow does
    (folder / "parts" / "notes.txt").write_text("exported by hand\n")


def keep(f: pd.DataFrame) -> pd.DataFrame:
    return f


def drop(*columns: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: f.drop(columns=list(columns))


def one_value(column: str, value: Any, row: int = 3) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """One cell changed; text in a number column turns the column into text (as an export
    that wrote one bad value would)."""

    def change(f: pd.DataFrame) -> pd.DataFrame:
        f = f.copy()
        if isinstance(value, str):
            f[column] = f[column].astype(str)
        f.loc[f.index[row], column] = value
        return f

    return change


def nan_target(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f[TARGET] = f[TARGET].astype("float64")
    f.loc[f.index[5], TARGET] = np.nan
    return f


def duplicate_ids(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[:2]], ignore_index=True)


def contract_with(**changes: Any) -> dict[str, Any]:
    from tests.test_real_data import contract

    merged = {**contract(explicit_features=True), **changes}
    return {k: v for k, v in merged.items() if v is not None}  # None: leave the key out


TRAIN = ["train", "--data"]
PREDICT = ["predict", "--output", "o.parquet", "--input"]

CASES = [
    # the table's columns against the contract
    Case(
        "missing-feature-column",
        [*TRAIN, "m.parquet"],
        ("missing contract columns tenure_months", "fix [data]"),
        parquet("m.parquet", drop("tenure_months")),
    ),
    Case(
        "missing-target",
        [*TRAIN, "m.parquet"],
        (f"missing contract columns {TARGET}",),
        parquet("m.parquet", drop(TARGET)),
    ),
    Case(
        "missing-identifier",
        [*TRAIN, "m.parquet"],
        ("missing contract columns customer_ref",),
        parquet("m.parquet", drop("customer_ref")),
    ),
    Case(
        "text-in-numeric-feature",
        [*TRAIN, "t.parquet"],
        ("age_years must be numeric", "categorical"),
        parquet("t.parquet", one_value("age_years", "forty")),
    ),
    Case(
        "text-in-numeric-feature-csv",
        [*TRAIN, "t.csv"],
        ("used_gb must be numeric",),
        csv_bytes(
            "t.csv", lambda f: one_value("used_gb", "approx. 3")(f).to_csv(index=False).encode()
        ),
    ),
    Case(
        "empty-table",
        [*TRAIN, "e.parquet"],
        ("has no rows",),
        parquet("e.parquet", lambda f: f.iloc[:0]),
    ),
    Case(
        "header-only-csv",
        [*TRAIN, "h.csv"],
        ("has no rows",),
        csv_bytes("h.csv", lambda f: f.iloc[:0].to_csv(index=False).encode()),
    ),
    Case(
        "non-binary-target",
        [*TRAIN, "b.parquet"],
        (f"target {TARGET} is not binary (found 2)", "use 0/1"),
        parquet("b.parquet", one_value(TARGET, 2)),
    ),
    Case(
        "text-target",
        [*TRAIN, "b.csv"],
        (f"target {TARGET} is not binary", "use 0/1"),
        csv_bytes(
            "b.csv",
            lambda f: (
                f.assign(**{TARGET: f[TARGET].map({0: "no", 1: "yes"})})
                .to_csv(index=False)
                .encode()
            ),
        ),
    ),
    Case(
        "nan-in-target",
        [*TRAIN, "n.parquet"],
        (f"{TARGET} has missing values",),
        parquet("n.parquet", nan_target),
    ),
    Case(
        "one-class-target",
        [*TRAIN, "zeros.parquet"],
        ("training rows hold only target value(s) [0]; both classes are needed",),
        parquet("zeros.parquet", lambda f: f.assign(**{TARGET: 0})),
    ),
    Case(
        "duplicate-identifiers",
        [*TRAIN, "d.parquet"],
        ("duplicate identifiers (account_ref, customer_ref) in 2 rows", "deduplicate"),
        parquet("d.parquet", duplicate_ids),
    ),
    Case(
        "missing-identifier-values",
        [*TRAIN, "i.parquet"],
        ("account_ref has missing values in 1 rows", "identifiers may not be empty"),
        parquet("i.parquet", one_value("account_ref", None)),
    ),
    Case(
        "infinite-feature",
        [*TRAIN, "f.parquet"],
        ("used_gb has infinite or huge values", "fix the export or the units"),
        parquet("f.parquet", one_value("used_gb", float("inf"))),
    ),
    Case(
        "huge-feature",
        [*TRAIN, "f.parquet"],
        ("monthly_fee_eur has infinite or huge values (beyond 1e+12) in 1 rows",),
        parquet("f.parquet", one_value("monthly_fee_eur", 1e300)),
    ),
    Case(
        "nested-values",
        [*TRAIN, "n.parquet"],
        ("handset (list<element: string>) hold nested values", "one value per cell"),
        parquet("n.parquet", lambda f: f.assign(handset=[["iPhone", "Samsung"]] * len(f))),
    ),
    Case(
        "duplicate-column-csv",
        [*TRAIN, "d.csv"],
        ("duplicate columns: region; rename one",),
        csv_bytes(
            "d.csv",
            lambda f: f.to_csv(index=False).replace("region", "region,region", 1).encode(),
        ),
    ),
    # the contract in the policy
    Case(
        "identifier-listed-as-feature",
        [*TRAIN, "g.parquet"],
        ("account_ref are listed as features", "remove them"),
        parquet("g.parquet", keep),
        data=contract_with(features=["account_ref", "age_years", "handset", "region"]),
    ),
    Case(
        "contract-names-absent-columns",
        [*TRAIN, "g.parquet"],
        ("missing contract columns lifetime_value, nps_score",),
        parquet("g.parquet", keep),
        data=contract_with(
            features=["age_years", "lifetime_value", "nps_score", "handset", "region"]
        ),
    ),
    Case(
        "contract-target-absent",
        [*TRAIN, "g.parquet"],
        ("missing contract columns has_churned",),
        parquet("g.parquet", keep),
        data=contract_with(target="has_churned"),
    ),
    Case(
        "contract-text-column-not-categorical",
        [*TRAIN, "g.parquet"],
        ("snapshot_note must be numeric; list it under [data] categorical",),
        parquet("g.parquet", keep),
        data=contract_with(features=None),
    ),
    # files and formats
    Case(
        "wrong-file-type",
        [*TRAIN, "features.xlsx"],
        ("unknown file type '.xlsx'", ".parquet or .csv"),
        raw("features.xlsx", b"PK\x03\x04 not really a workbook"),
    ),
    Case("missing-file", [*TRAIN, "nope.parquet"], ("does not exist", "check the path")),
    Case(
        "corrupt-parquet",
        [*TRAIN, "t.parquet"],
        ("cannot be read: not a parquet file, or a damaged one", "export it again"),
        truncated_parquet,
    ),
    Case(
        "parquet-that-is-text",
        [*TRAIN, "x.parquet"],
        ("x.parquet cannot be read: not a parquet file",),
        raw("x.parquet", b"account_ref,age_years\nACC-000001,40\n"),
    ),
    Case(
        "csv-not-utf8",
        [*TRAIN, "l.csv"],
        ("not UTF-8", "save it as UTF-8"),
        csv_bytes("l.csv", lambda f: f.to_csv(index=False).encode("latin-1")),  # "Süd"
    ),
    Case(
        "folder-without-parquet",
        [*TRAIN, "exports"],
        ("exports holds no parquet files (found README.txt, features.csv)", "point at"),
        folder_without_parquet,
    ),
    Case(
        "folder-with-mismatched-parts",
        [*TRAIN, "parts"],
        ("column age_years is", "in part-1.parquet but int64 in part-0.parquet", "one schema"),
        folder_with_mixed_parts,
    ),
    Case(
        "folder-with-stray-file",
        [*TRAIN, "parts"],
        ("holds files that are not parquet (notes.txt); move them out of the folder",),
        folder_with_stray_file,
    ),
    # DuckDB
    Case(
        "duckdb-unknown-table",
        [*TRAIN, "duckdb://bad.duckdb?table=customer_feature"],
        ("table 'customer_feature' does not exist", "tables: customer_features", "?table="),
        duckdb_table("customer_features", keep),
    ),
    Case(
        "duckdb-no-table",
        [*TRAIN, "duckdb://bad.duckdb"],
        ("name the table", "?table="),
        duckdb_table("customer_features", keep),
    ),
    Case(
        "duckdb-table-injection",
        [*TRAIN, "duckdb://bad.duckdb?table=x;drop table customer_features"],
        ("name the table",),
        duckdb_table("customer_features", keep),
    ),
    Case(
        "duckdb-not-a-database",
        [*TRAIN, "duckdb://bad.duckdb?table=customer_features"],
        ("bad.duckdb is not a DuckDB database", "check the path"),
        raw("bad.duckdb", b"\x00" * 4096),
    ),
    Case(
        # DuckDB would download its sqlite extension from the internet to open this one
        "duckdb-file-is-sqlite",
        [*TRAIN, "duckdb://bad.duckdb?table=customer_features"],
        ("is a SQLite database, not DuckDB", "export the table"),
        raw("bad.duckdb", b"SQLite format 3\x00" + b"\x00" * 4080),
    ),
    Case(
        "duckdb-missing-file",
        [*TRAIN, "duckdb://absent.duckdb?table=customer_features"],
        ("database file", "does not exist"),
    ),
    Case(
        "duckdb-missing-column",
        [*TRAIN, "duckdb://bad.duckdb?table=customer_features"],
        ("missing contract columns region",),
        duckdb_table("customer_features", drop("region")),
    ),
    # URIs
    Case(
        "unknown-scheme",
        [*TRAIN, "warehouse://prod/customer_features"],
        ("unknown scheme 'warehouse'",),
    ),
    Case("empty-uri", [*TRAIN, " "], ("--data is empty",)),
    Case(
        "synthetic-without-seed",
        [*TRAIN, "synthetic://magenta-churn-synthetic/v1?rows=500"],
        ("integer seed= and rows=",),
    ),
    Case(
        "rows-with-data",
        [*TRAIN, "g.parquet", "--rows", "500"],
        ("--rows only applies to the built-in generator",),
        parquet("g.parquet", keep),
    ),
    # predict --input: the same door, and the model's own columns
    Case(
        "predict-missing-model-column",
        [*PREDICT, "p.parquet"],
        ("missing model columns: tenure_months",),
        parquet("p.parquet", drop("tenure_months"), label=False),
    ),
    Case(
        "predict-no-identifier",
        [*PREDICT, "p.parquet"],
        ("none of the identifier columns (account_ref, customer_ref)",),
        parquet("p.parquet", drop(*IDS), label=False),
    ),
    Case(
        "predict-text-in-numeric",
        [*PREDICT, "p.parquet"],
        ("age_years must be numeric",),
        parquet("p.parquet", one_value("age_years", "forty"), label=False),
    ),
    Case(
        "predict-duckdb-unknown-table",
        [*PREDICT, "duckdb://bad.duckdb?table=todays_customers"],
        ("table 'todays_customers' does not exist",),
        duckdb_table("current_customers", keep, label=False),
    ),
    Case(
        "predict-duckdb-not-a-database",
        [*PREDICT, "duckdb://bad.duckdb?table=current_customers"],
        ("is not a DuckDB database",),
        raw("bad.duckdb", b"not a database at all\n" * 100),
    ),
    Case(
        "predict-folder-without-parquet",
        [*PREDICT, "exports"],
        ("exports", "no parquet files"),
        folder_without_parquet,
    ),
    Case(
        "predict-unknown-scheme",
        [*PREDICT, "bigquery://project/dataset/table"],
        ("unknown scheme 'bigquery'",),
    ),
]


@pytest.fixture(scope="module")
def store_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store whose policy describes the team's table, with an approved champion."""
    folder = tmp_path_factory.mktemp("bad-data")
    source = write_duckdb(folder)
    cli = new_store(folder, "duckdb")
    run = cli.json("train", "--data", source.features, by=CAROL)["run_id"]
    version = cli.json("propose", run, by=CAROL)["version"]
    cli.json("approve", str(version), "--reason", "baseline", "--yes", by=ALICE)
    return cli.home


def test_corpus_is_large_enough() -> None:
    assert len([c for c in CASES if c.args[0] == "train"]) >= 15
    assert len([c for c in CASES if c.args[0] == "predict"]) >= 5
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_data(
    case: Case, store_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import copy_store, make_cli

    monkeypatch.chdir(tmp_path)
    if case.prepare:
        case.prepare(tmp_path)
    if case.data is not None:  # a copy of the store, to take this case's [data] contract
        store_home = copy_store(store_home, tmp_path / "store")
        policy = tmp_path / "policy"
        policy.mkdir()
        shutil.copy(store_home / "release-policy.toml", policy / "release-policy.toml")
        write_policy(policy, data=case.data)
    env: dict[str, str | None] = {**make_cli(store_home).env, "MAGENTA_RELEASE_USER": CAROL}
    before = _snapshot(store_home)
    result = None
    if case.data is not None:
        policy_set = ["policy", "set", str(policy / "release-policy.toml"), "--reason", "case"]
        stored = invoke([*policy_set, "--by", "release-manager"], env)
        if stored.exit_code != 0:
            result = stored  # a contract no table could meet is refused when it is set
        before = _snapshot(store_home)
    result = result or invoke(case.args, env)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.splitlines()[-1] == errors[0]
    for needle in case.needles:
        assert needle in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert _snapshot(store_home) == before
    assert not (tmp_path / "o.parquet").exists()


def test_duckdb_reads_fetch_no_extension_but_read_views_over_parquet(tmp_path: Path) -> None:
    """DuckDB downloads and loads extensions from extensions.duckdb.org on demand: the tool's
    connections do neither. A view over parquet files (dbt-duckdb's `external` models) still
    reads."""
    import duckdb

    from magenta_release.io import sources
    from magenta_release.io.sources import duckdb_table

    table().to_parquet(tmp_path / "features.parquet", index=False)
    con = duckdb.connect(str(tmp_path / "dbt.duckdb"))
    path = (tmp_path / "features.parquet").as_posix().replace("'", "''")
    con.execute(f"create view customer_features as select * from read_parquet('{path}')")
    con.close()
    source = sources.parse(f"duckdb://{tmp_path / 'dbt.duckdb'}?table=customer_features")
    assert sources.read(source, ["account_ref"]).num_rows == len(table())
    with duckdb_table.connect(source) as con:
        found = dict(
            con.sql(
                "select name, value from duckdb_settings() where name in "
                "('autoinstall_known_extensions', 'autoload_known_extensions')"
            ).fetchall()
        )
    assert found == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
