"""Fair gates (issue 26) on a real SQLite store: a champion trained by `train` and a team's
challenger on the same table. A challenger evaluated on rows the champion was trained on is
refused (or judged on the disjoint rows when enough remain), never compared silently; the
policy's split (`magenta_release.sdk`) makes the comparison fair by construction; a team's
metric names are compared; a gates_failed run is proposed again once something changed; and
`compare` re-scores the champion on each run's own rows."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import ALICE, CAROL, SMALL, SMALL_DATA_GATES, Cli, make_cli, write_policy

SEED = 7  # the champion's `train --seed`: the challenger reads the same generated table
TARGET = "has_churned"
IDENTIFIERS = ("rating_account_id", "customer_id")


@dataclass
class Store:
    cli: Cli
    tmp: Path
    champion_run: str

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.cli.home / 'mlflow.db'}"


def _table() -> pd.DataFrame:
    from magenta_release.core.synthetic import generate

    return generate(SEED, SMALL).table


def _pipeline(columns: list[str]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier

    cat = ["smartphone_brand_group"]
    encode = ColumnTransformer(
        [
            ("brand", OneHotEncoder(handle_unknown="ignore"), cat),
            ("numbers", "passthrough", [c for c in columns if c not in cat]),
        ]
    )
    trees = XGBClassifier(n_estimators=60, max_depth=3, random_state=0, n_jobs=1)
    return Pipeline([("encode", encode), ("trees", trees)])


def _features(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in (*IDENTIFIERS, TARGET)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """v1: `train --seed 7` approved as champion (approver alice)."""
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    tmp = tmp_path_factory.mktemp("fair")
    cli = make_cli(tmp / "mlruns")
    assert cli("init").exit_code == 0
    write_policy(cli.home, approval={"approvers": [ALICE], "four_eyes": True}, **SMALL_DATA_GATES)
    run = cli.json("train", "--rows", str(SMALL), "--seed", str(SEED), "--param", "max_depth=3")
    assert cli.json("propose", run["run_id"], by=CAROL)["status"] == "pending_approval"
    assert cli.json("approve", "1", "--reason", "baseline", "--yes", by=ALICE)["champion"] == 1
    yield Store(cli, tmp, run["run_id"])
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


def _log_plain(
    store: Store, name: str, fit: pd.DataFrame, rows: pd.DataFrame, **metrics: float
) -> str:
    """A run logged the team's way: plain MLflow, a random split, skops, evaluation rows."""
    import mlflow
    from mlflow import MlflowClient

    from magenta_release.io import fluent

    columns = _features(fit)
    pipe = _pipeline(columns).fit(fit[columns], fit[TARGET])
    source = store.tmp / f"{name}.parquet"
    rows.to_parquet(source, index=False)
    experiment = MlflowClient(store.uri).get_experiment_by_name("churn")
    assert experiment is not None
    with (
        fluent.tracking(store.uri),
        mlflow.start_run(experiment_id=experiment.experiment_id) as run,
    ):
        fluent.log_skops_model(pipe, "model", pip_requirements=["scikit-learn"])
        fluent.log_evaluation_rows(pd.read_parquet(source), str(source), TARGET, name=name)
        if metrics:
            mlflow.log_metrics(metrics)
    return str(run.info.run_id)


def _gate(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in doc["gates"] if g["name"] == name)


def _random_split(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    table = _table()
    fit, rows = train_test_split(table, test_size=0.25, stratify=table[TARGET], random_state=seed)
    return fit, rows.reset_index(drop=True)


# ---- item 1: a challenger judged on the champion's training rows ----------------------------
def _overlap(detail: str, who: str = "champion v1") -> int:
    found = re.search(rf"([\d,]+) were training rows of {who}", detail)
    assert found, detail
    return int(found.group(1).replace(",", ""))


def set_policy_keys(home: Path, section: str, **values: Any) -> None:
    """Set keys of one policy section (keeping the rest) and store the policy."""
    import tomllib

    import tomli_w

    from tests.conftest import set_stored_policy

    path = home / "release-policy.toml"
    data = tomllib.loads(path.read_text())
    target = data
    for part in section.split("."):
        target = target.setdefault(part, {})
    target.update(values)
    path.write_text(tomli_w.dumps(data))
    set_stored_policy(home, path)


def test_evaluation_rows_the_champion_was_trained_on_refuse_the_comparison(store: Store) -> None:
    fit, rows = _random_split()
    run = _log_plain(store, "random-split", fit, rows)
    doc = store.cli.json("propose", run, by=CAROL, code=1)
    gate = _gate(doc, "evaluation_disjoint")
    assert not gate["passed"]
    # most of a random 25 % are on the champion's training side of its 20 % hash split
    assert 600 < _overlap(gate["detail"]) < 900, gate
    assert "min_disjoint_rows = 500" in gate["detail"] and "sdk.split" in gate["detail"]
    for name in ("no_regression", "campaign_value"):
        compared = _gate(doc, name)
        assert compared["detail"].startswith("not compared:"), compared
    assert not _gate(doc, "no_regression")["passed"]
    # the challenger's own metrics are still checked on all of its rows
    assert _gate(doc, "metrics_reproducible")["detail"].startswith("nothing compared")

    # with fewer rows required, the disjoint rows are judged alone, and the gate says so
    set_policy_keys(store.cli.home, "gates", min_disjoint_rows=100)
    again = store.cli.json("propose", run, by=CAROL, code=1)  # still: nothing compared
    assert again["version"] != doc["version"], "a gates_failed run is proposed again"
    gate = _gate(again, "evaluation_disjoint")
    left = 1000 - _overlap(gate["detail"])
    assert gate["passed"] and f"every gate judges the other {left:,} rows" in gate["detail"]
    assert f"on the same {left:,} rows" in _gate(again, "no_regression_roc_auc")["detail"]
    shown = store.cli.json("show", str(again["version"]))["evidence"]
    assert shown["fairness"]["judged_rows"] == left
    assert shown["metrics"]["eval_rows"] == left
    set_policy_keys(store.cli.home, "gates", min_disjoint_rows=500)


def test_policy_split_via_the_sdk_is_disjoint_by_construction(store: Store) -> None:
    from magenta_release import sdk

    ctx = sdk.open_store(home=store.cli.home)
    table = _table()
    training, evaluation = sdk.split(table, ctx)
    columns = _features(table)
    pipe = _pipeline(columns).fit(training[columns], training[TARGET])
    run = sdk.log_governed_run(
        pipe,
        training=training,
        evaluation=evaluation,
        evaluation_dir=store.tmp / "evaluation",
        store=ctx,
        metrics={"roc_auc_score": 0.5},  # a team's own name, not mapped: logged, not compared
    )
    assert run.rows["evaluation"] == len(evaluation)
    doc = store.cli.json("propose", run.run_id, by=CAROL)
    gate = _gate(doc, "evaluation_disjoint")
    assert (
        gate["passed"]
        and "disjoint from the training rows of the challenger and champion v1" in gate["detail"]
    ), gate
    assert _gate(doc, "metrics_reproducible")["passed"]
    assert _gate(doc, "no_regression_roc_auc")["passed"]


# ---- item 7: a gates_failed run proposed again; history shows each outcome ------------------
def test_a_gates_failed_run_is_proposed_again_once_its_data_is_restored(store: Store) -> None:
    fit, rows = _random_split(seed=3)
    rows = rows[~_on_training_side(rows)].reset_index(drop=True)  # only the champion's eval side
    run = _log_plain(store, "restored", fit, rows)
    source = store.tmp / "restored.parquet"
    original = source.read_bytes()
    edited = pd.read_parquet(source)
    edited.loc[0, "age"] += 1
    edited.to_parquet(source, index=False)  # a nightly rebuild between training and propose
    set_policy_keys(store.cli.home, "gates", metrics_reproducible="warn", min_disjoint_rows=100)
    failed = store.cli.json("propose", run, by=CAROL, code=1)
    assert "changed since the run logged it" in _gate(failed, "metrics_reproducible")["detail"]
    again = store.cli("propose", run, by=CAROL)  # nothing changed: the same version
    assert again.exit_code == 1 and f"version {failed['version']} is gates_failed" in again.stdout
    assert "judged the same again" in again.stdout
    source.write_bytes(original)  # the table restored
    result = store.cli("propose", run, "--json", by=CAROL)
    doc = json.loads(result.stdout)
    assert doc["version"] == failed["version"] + 1, doc  # a new version, judged anew
    assert not any("changed since" in g["detail"] for g in doc["gates"]), doc["gates"]
    events = store.cli.json("history", "--limit", "5")["events"]
    outcomes = {e["version"]: e["gate_outcome"] for e in events if e["action"] == "propose"}
    assert outcomes[doc["version"]].endswith(f"(run proposed again after v{failed['version']})")
    assert outcomes[failed["version"]].startswith("failed: ") and (
        "metrics_reproducible" in outcomes[failed["version"]]
    )
    table = store.cli("history", "--limit", "5").stdout
    assert "gates" in table and "failed:" in table  # the gates column of the table
    if doc["status"] == "pending_approval":
        store.cli("reject", str(doc["version"]), "--reason", "test done", by=ALICE)
    set_policy_keys(store.cli.home, "gates", metrics_reproducible="require", min_disjoint_rows=500)


def _on_training_side(rows: pd.DataFrame) -> Any:
    from magenta_release.core.contract import DataContract, evaluation_mask

    return ~evaluation_mask(rows, DataContract())


# ---- item 4: compare re-scores the champion on each run's own rows --------------------------
def test_compare_rescores_the_champion_on_each_runs_rows_or_says_it_could_not(
    store: Store,
) -> None:
    table = _table()
    eval_side = table[~_on_training_side(table)]
    fit = table[_on_training_side(table)]
    half = len(eval_side) // 2
    first = _log_plain(store, "first-half", fit, eval_side.iloc[:half], roc_auc=0.7)
    second = _log_plain(store, "second-half", fit, eval_side.iloc[half:], roc_auc=0.7)
    gone = _log_plain(store, "gone", fit, eval_side.iloc[:300], roc_auc=0.7)
    (store.tmp / "gone.parquet").unlink()
    doc = store.cli.json("compare", first, second, gone)
    runs = {r["run_id"]: r for r in doc["runs"]}
    a, b = runs[first]["champion_rescored"], runs[second]["champion_rescored"]
    assert a is not None and b is not None
    assert a["eval_rows"] + b["eval_rows"] == len(eval_side)  # each on its own rows
    assert a["roc_auc"] != b["roc_auc"]  # before: the first run's rows reused for both
    assert runs[first]["delta_on_same_rows"] and runs[second]["delta_on_same_rows"]
    assert runs[first]["champion_trained_on_rows"] == 0
    assert runs[gone]["delta_on_same_rows"] is False  # before: claimed true
    assert "cannot be read" in runs[gone]["champion_not_rescored"]
    human = store.cli("compare", first, gone).stdout
    assert "the champion could not be re-scored on its rows" in human


def test_compare_and_runs_show_a_team_metric_under_the_gates_name(store: Store) -> None:
    fit, rows = _random_split(seed=5)
    run = _log_plain(store, "named", fit, rows, roc_auc_score=0.7)
    set_policy_keys(store.cli.home, "gates.metric_names", roc_auc_score="roc_auc")
    listed = {r["run_id"]: r for r in store.cli.json("runs", "--last", "3")["runs"]}
    assert listed[run]["metrics"]["roc_auc"] == 0.7  # before: "—"
    doc = store.cli.json("compare", run)
    assert doc["runs"][0]["metrics"]["roc_auc"] == 0.7
    # its rows were mostly the champion's training rows: compare says so
    assert doc["runs"][0]["champion_trained_on_rows"] > 500
    assert "† evaluation rows the champion was trained on" in store.cli("compare", run).stdout


# ---- item 8: a dbt table with a DATE column, an optional identifier and patterns ------------
def test_train_on_a_dbt_table_leaves_the_date_out_with_one_notice(cli: Cli, tmp_path: Path) -> None:
    from examples.team_pipeline import warehouse

    database = warehouse.build(tmp_path / "warehouse.duckdb", rows=3000)
    write_policy(
        cli.home,
        data={
            "target": "left_within_60d",
            "identifiers": ["customer_id"],
            "optional_identifiers": ["contract_id"],  # not in this table: fine
            "categorical": ["tariff"],
            "exclude": ["has_*"],
            "evaluation_fraction": 0.25,
        },
        **{"gates.min": {"roc_auc": 0.5}},
    )
    uri = f"duckdb://{database}?table=churn_features"
    result = cli("train", "--data", uri, "--json")
    assert result.exit_code == 0, result.stderr  # before: "signup_date must be numeric"
    doc = json.loads(result.stdout)
    [notice] = doc["notices"]
    assert notice.startswith("left out of the features: signup_date")
    assert "left out of the features: signup_date" in result.stderr  # the one-line notice
    [row] = [r for r in cli.json("runs", "--last", "1")["runs"]]
    assert row["run_id"] == doc["run_id"]
    shown = json.loads(cli("propose", doc["run_id"], "--json", by=CAROL).stdout)
    inputs = {g["name"]: g["detail"] for g in shown["gates"]}["no_identifier_inputs"]
    assert inputs.startswith("6 inputs")  # tariff, tenure, fee, usage, two n_case_*


def test_a_missing_identifier_names_the_similar_column(cli: Cli, tmp_path: Path) -> None:
    from examples.team_pipeline import warehouse

    frame = warehouse.churn_table(500, seed=1).rename(columns={"customer_id": "customer_ref"})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False)
    write_policy(cli.home, data={"target": "left_within_60d", "identifiers": ["customer_id"]})
    result = cli("train", "--data", str(path))
    assert result.exit_code == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "missing contract columns customer_id" in line and "customer_id -> customer_ref" in line
