"""Fair gates (issue 26) on a real SQLite store: a champion trained by `train` and a team's
challenger on the same table. A challenger evaluated on rows the champion was trained on is
refused (or judged on the disjoint rows when enough remain), never compared silently; the
policy's split (`magenta_release.sdk`) makes the comparison fair by construction; a team's
metric names are compared; a gates_failed run is proposed again once something changed; and
`compare` re-scores the champion on each run's own rows."""

from __future__ import annotations

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
