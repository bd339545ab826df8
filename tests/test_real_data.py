"""The real-data path (issue 12): a team's own tables, shaped unlike the generator's, through
train -> propose -> approve -> predict, from a DuckDB database and from a folder of parquet
part files, by the CLI and by the Dagster assets; the gates notice a source that changed or
disappeared after training; no identifier and no row reaches the MLflow store."""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SMALL_DATA_GATES, Cli, copy_store, make_cli, write_policy
from tests.privacy import store_text

ROWS = 4000  # ~100 churners; ~25 of them among the evaluation rows
FLOOR = SMALL_DATA_GATES["gates.min"]["roc_auc"]  # the policy's roc_auc floor for small data
TARGET = "churned_next_month"
IDS = ("account_ref", "customer_ref")
CATEGORICAL = ("handset", "region")
FEATURES = (
    "age_years",
    "tenure_months",
    "remaining_binding_days",
    "has_special_offer",
    "is_magenta1",
    "available_gb",
    "monthly_fee_eur",
    "used_gb",
    "n_cases",
    "days_since_last_case",
    *CATEGORICAL,
)
REGIONS = ("Nord", "Ost", "Süd", "West", "Mitte")
PARTS = 4  # part files in the parquet folder
CAROL, ALICE = "carol", "alice"  # proposer; approver (four eyes)


def team_table(
    seed: int, rows: int, *, label: bool = True, bool_target: bool = False, note: bool = True
) -> pd.DataFrame:
    """A feature table as a team's dbt model might write it, derived from the generator so the
    model has something to learn: other column names, string identifiers (`ACC-000123`, an
    e-mail-like customer reference), a renamed 0/1 target, columns the generator never had
    (`tenure_months`, `region`) and a column that is no feature at all (`snapshot_note`)."""
    from magenta_release.core.synthetic import generate

    g = generate(seed, rows).table
    rng = np.random.default_rng(seed + 1)
    churned = g["has_churned"].astype(bool)
    frame = pd.DataFrame(
        {
            "account_ref": [f"ACC-{i:06d}" for i in g["rating_account_id"]],
            "customer_ref": [f"kunde.{c.replace('.', '-')}@example.de" for c in g["customer_id"]],
            "snapshot_note": "export 2024-08-01",
            "age_years": g["age"].astype("int64"),
            "tenure_months": (g["contract_lifetime_days"] // 30).astype("int64"),
            "remaining_binding_days": g["remaining_binding_days"],
            "has_special_offer": g["has_special_offer"].astype(bool),
            "is_magenta1": g["is_magenta1_customer"].astype(bool),
            "available_gb": g["available_gb"],
            # a distinctive value per row (the privacy test looks for raw rows by them)
            "monthly_fee_eur": g["gross_mrc"] + rng.integers(1, 10**6, rows) / 10**8,
            "used_gb": g["used_gb"],
            "n_cases": g["n_cases"],
            "days_since_last_case": g["days_since_last_case"],
            "handset": g["smartphone_brand_group"],
            "region": rng.choice(REGIONS, rows),
        }
    )
    if not note:
        frame = frame.drop(columns=["snapshot_note"])
    if label:
        frame[TARGET] = churned if bool_target else churned.astype("int64")
    return frame


def contract(*, explicit_features: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "target": TARGET,
        "identifiers": list(IDS),
        "categorical": list(CATEGORICAL),
        "evaluation_fraction": 0.25,
    }
    if explicit_features:
        data["features"] = list(FEATURES)
    return data


@dataclass
class Source:
    """A team's tables in one format: the labelled training table and today's customers."""

    kind: str
    features: str  # source URI of the training table
    customers: str  # source URI of the table to score
    database: Path  # where a DuckDB database lives (Dagster writes predictions beside it)
    scoring: pd.DataFrame  # the rows of `customers`, in their order


def write_duckdb(folder: Path) -> Source:
    from magenta_release.io.sources import write_duckdb as write

    database = folder / "warehouse" / "analytics.duckdb"
    features = write(team_table(7, ROWS), database, "customer_features")
    scoring = team_table(99, 500, label=False)
    customers = write(scoring, database, "current_customers")
    return Source("duckdb", features, customers, database, scoring)


def write_parquet_folder(folder: Path) -> Source:
    """Part files as Spark or dbt-duckdb write them; the target as a boolean."""
    train = folder / "lake" / "customer_features"
    score = folder / "lake" / "current_customers"
    train.mkdir(parents=True)
    score.mkdir(parents=True)
    write_parts(team_table(7, ROWS, bool_target=True, note=False), train, PARTS)
    scoring = team_table(99, 500, label=False, note=False)
    write_parts(scoring, score, 3)
    return Source("parquet", str(train), str(score), folder / "lake" / "scores.duckdb", scoring)


def write_parts(frame: pd.DataFrame, folder: Path, parts: int) -> None:
    size = -(-len(frame) // parts)
    for i in range(parts):
        chunk = frame.iloc[i * size : (i + 1) * size]
        chunk.to_parquet(folder / f"part-{i:05d}.parquet", index=False)


WRITERS = {"duckdb": write_duckdb, "parquet": write_parquet_folder}


def new_store(folder: Path, kind: str) -> Cli:
    cli = make_cli(folder / "mlruns")
    assert cli("init").exit_code == 0
    write_policy(
        cli.home,
        # the DuckDB table lists its features (and has a text column that is none); the
        # parquet folder's features are "every column but the target and the identifiers"
        data=contract(explicit_features=kind == "duckdb"),
        approval={"approvers": [ALICE, "bob"], "four_eyes": True},
        **SMALL_DATA_GATES,
    )
    return cli


@dataclass
class Released:
    cli: Cli
    source: Source
    train: dict[str, Any]
    proposal: dict[str, Any]
    approval: dict[str, Any]


@pytest.fixture(scope="module", params=sorted(WRITERS))
def released(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Released:
    """train -> propose (carol) -> approve (alice) through the CLI, on one kind of source."""
    kind = request.param
    folder = tmp_path_factory.mktemp(f"released-{kind}")
    source = WRITERS[kind](folder)
    cli = new_store(folder, kind)
    trained = cli.json("train", "--data", source.features, "--run-name", kind, by=CAROL)
    proposal = cli.json("propose", trained["run_id"], by=CAROL)
    approval = cli.json("approve", str(proposal["version"]), "--reason", "first", "--yes", by=ALICE)
    return Released(cli, source, trained, proposal, approval)


def test_train_propose_approve_on_the_teams_table(released: Released) -> None:
    trained, proposal = released.train, released.proposal
    assert trained["metrics"]["roc_auc"] > FLOOR
    assert trained["dataset"] == _canonical(released.source.features)
    assert proposal["status"] == "pending_approval", proposal["gates"]
    gates = {g["name"]: g for g in proposal["gates"]}
    assert gates["metrics_reproducible"]["passed"], gates["metrics_reproducible"]
    assert released.approval["champion"] == proposal["version"]
    status = released.cli.json("status")
    assert status["champion"]["version"] == proposal["version"]


def _canonical(uri: str) -> str:
    from magenta_release.io.datasets import canonical

    return canonical(uri).uri


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_predict_scores_every_row_in_input_order(
    released: Released, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"scores{suffix}"
    done = released.cli.json("predict", "--input", released.source.customers, "--output", str(out))
    version = released.proposal["version"]
    assert done["rows"] == len(released.source.scoring)
    assert done["model_version"] == version
    scores = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype=str)
    assert list(scores["account_ref"]) == list(released.source.scoring["account_ref"])
    assert list(scores["customer_ref"]) == list(released.source.scoring["customer_ref"])
    assert (scores["model_version"].astype(int) == version).all()
    assert scores["churn_score"].astype(float).between(0, 1).all()
    assert TARGET not in scores.columns


# --- the gates re-read the source: a changed or vanished table is refused -------------------


def _edit_one_value(source: Source) -> None:
    """Change one customer's fee by one cent, in place (the kind of edit a backfill makes)."""
    if source.kind == "duckdb":
        import duckdb

        con = duckdb.connect(str(source.database))
        try:
            con.execute(
                "update customer_features set monthly_fee_eur = monthly_fee_eur + 0.01 "
                "where account_ref = (select min(account_ref) from customer_features)"
            )
        finally:
            con.close()
    else:
        part = sorted(Path(source.features).glob("*.parquet"))[-1]
        frame = pd.read_parquet(part)
        frame.loc[frame.index[-1], "monthly_fee_eur"] += 0.01
        frame.to_parquet(part, index=False)


def _delete(source: Source) -> None:
    if source.kind == "duckdb":
        source.database.unlink()
    else:
        shutil.rmtree(source.features)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_propose_refuses_a_source_changed_or_gone_since_training(kind: str, tmp_path: Path) -> None:
    source = WRITERS[kind](tmp_path)
    cli = new_store(tmp_path, kind)
    changed, gone = (
        cli.json("train", "--data", source.features, "--run-name", name, by=CAROL)["run_id"]
        for name in ("changed", "gone")
    )

    _edit_one_value(source)
    refused = cli.json("propose", changed, by=CAROL, code=1)
    assert refused["status"] == "gates_failed"
    for name in ("metrics_reproducible", "no_regression"):
        gate = {g["name"]: g for g in refused["gates"]}[name]
        assert not gate["passed"]
        assert "changed since training" in gate["detail"], gate
        assert "retrain on the current data" in gate["detail"], gate

    _delete(source)
    refused = cli.json("propose", gone, by=CAROL, code=1)
    assert refused["status"] == "gates_failed"
    for name in ("metrics_reproducible", "no_regression"):
        gate = {g["name"]: g for g in refused["gates"]}[name]
        assert not gate["passed"]
        assert "is gone" in gate["detail"] and "does not exist" in gate["detail"], gate
    status = cli.json("status")
    assert status["champion"] is None and status["challenger"] is None


# --- the same tables through the Dagster assets ---------------------------------------------


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_dagster_assets_train_and_score_the_teams_tables(kind: str, tmp_path: Path) -> None:
    import dagster as dg

    from dagster_assets import assets
    from dagster_assets.resources import CustomerTables, ParquetJsonIOManager, ReleaseStore

    source = WRITERS[kind](tmp_path)
    cli = new_store(tmp_path, kind)
    resources = {
        "release": ReleaseStore(home=str(cli.home), identity="dagster"),
        "tables": CustomerTables(
            features_uri=source.features,
            customers_uri=source.customers,
            database=str(source.database),
        ),
        "io_manager": ParquetJsonIOManager(base_dir=str(tmp_path / "dagster-data")),
    }
    trained = dg.materialize(
        [assets.customer_features, assets.training_run, assets.release_candidate],
        resources=resources,
    )
    assert trained.success
    (check,) = trained.get_asset_check_evaluations()
    assert check.passed, check.metadata
    assert trained.output_for_node("customer_features") == source.features
    run_id = trained.output_for_node("training_run")["run_id"]
    challenger = cli.json("status")["challenger"]
    assert challenger["run_id"] == run_id
    assert challenger["proposed_by"] == "dagster"
    version = challenger["version"]
    cli.json("approve", str(version), "--reason", "weekly", "--yes", by=ALICE)

    served = dg.materialize(
        [assets.champion_model, assets.current_customers, assets.predictions],
        resources=resources,
    )
    assert served.success
    assert served.output_for_node("predictions")["rows"] == len(source.scoring)
    scores = pd.read_parquet(source.database.parent / "predictions.parquet")
    assert list(scores["account_ref"]) == list(source.scoring["account_ref"])
    assert list(scores["customer_ref"]) == list(source.scoring["customer_ref"])
    assert (scores["model_version"] == version).all()
    if kind == "parquet":  # the team's tables are read where they are, never copied
        assert not source.database.exists()


# --- privacy: no identifier and no raw row in the MLflow store ------------------------------


def store_bytes(home: Path) -> bytes:
    """`store_text` as bytes, plus the members of every zip archive in the store (a skops model
    is a zip; a compressed member would hide its content from a byte scan)."""
    import io
    import zipfile

    chunks = [store_text(home).encode("latin-1", "replace")]  # files were decoded as latin-1
    for path in sorted(home.rglob("*")):
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
                chunks += [archive.read(n) for n in archive.namelist()]
    return b"\n".join(chunks)


def present(blob: bytes, needles: set[bytes]) -> set[bytes]:
    """The needles that occur anywhere in `blob`, as plain substrings. Thousands of needles
    against megabytes: a rolling hash of every window of each needle length finds candidates
    in one vectorised pass, and `in` confirms them."""
    data = np.frombuffer(blob, dtype=np.uint8).astype(np.uint64)
    found: set[bytes] = set()
    for length in sorted({len(n) for n in needles}):
        wanted = [n for n in needles if len(n) == length]
        windows = _window_hashes(data, length)
        hashes = _window_hashes(
            np.frombuffer(b"".join(wanted), dtype=np.uint8).astype(np.uint64), length
        )[::length]
        hit = np.isin(hashes, windows)
        found |= {n for n, h in zip(wanted, hit, strict=True) if h and n in blob}
    return found


def _window_hashes(data: np.ndarray, length: int) -> np.ndarray:
    count = len(data) - length + 1
    hashes = np.zeros(max(count, 0), dtype=np.uint64)
    for j in range(length):  # wraps modulo 2**64, which is what a hash wants
        hashes = hashes * np.uint64(1_000_003) + data[j : j + count]
    return hashes


def leaked_values(home: Path, frame: pd.DataFrame) -> dict[str, set[str]]:
    """What of `frame` appears in the store: identifier values of any shape (`ACC-000123`, an
    e-mail; one hit is a leak) and raw rows, recognised by `monthly_fee_eur`, a value with 8
    decimals unique to its row, as text or as a little-endian float64. A fee can match by
    chance (a median, a split threshold), so raw rows are reported from three matches on."""
    blob = store_bytes(home)
    found = {
        c: {v.decode() for v in present(blob, {str(v).encode() for v in frame[c]})} for c in IDS
    }
    fees = [float(v) for v in frame["monthly_fee_eur"]]
    as_text = {repr(v).encode(): v for v in fees}
    as_double = {struct.pack("<d", v): v for v in fees}
    rows = {as_text[n] for n in present(blob, set(as_text))}
    rows |= {as_double[n] for n in present(blob, set(as_double))}
    found["rows"] = {repr(v) for v in rows} if len(rows) >= 3 else set()
    return found


def test_no_identifier_or_row_reaches_the_store(released: Released, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    # the training rows, whatever the source's format, and the customers predict scored
    frame = pd.concat([team_table(7, ROWS), released.source.scoring], ignore_index=True)
    assert leaked_values(released.cli.home, frame) == {c: set() for c in (*IDS, "rows")}

    # negative control, on a copy: an identifier of each shape in a tag and one raw row as a
    # param are found
    home = copy_store(released.cli.home, tmp_path / "mlruns")
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    run_id = released.train["run_id"]
    client.set_tag(run_id, "note", f"check {frame['account_ref'][5]} please")
    client.set_tag(run_id, "owner", frame["customer_ref"][6])
    rows = frame.iloc[10:13].to_csv(index=False)
    client.log_param(run_id, "example", rows[:6000])
    leaked = leaked_values(home, frame)
    assert leaked["account_ref"] >= {frame["account_ref"][5]}
    assert leaked["customer_ref"] >= {frame["customer_ref"][6]}
    assert len(leaked["rows"]) == 3
