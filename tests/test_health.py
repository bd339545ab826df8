"""Champion health through the CLI against a real SQLite MLflow store: a batch from the
training distribution passes, a drifted batch fails naming its features and alerts, every check
is a run in `<model>-health`, and no alias ever moves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from magenta_release.core import synthetic as data
from tests.conftest import Trained, write_policy
from tests.test_notify import Receiver

SAME = "synthetic://magenta-churn-synthetic/v1?seed=11&rows=3000"
DRIFTED = SAME + "&drift=0.6"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _aliases(t: Trained) -> tuple[Any, Any]:
    status = t.cli.json("status")
    return status["champion"]["version"], (status["challenger"] or {}).get("version")


def _health_runs(t: Trained) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{t.cli.home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("churn-classifier-health")
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]))


def test_same_distribution_passes_and_is_logged_as_a_health_run(released: Trained) -> None:
    before = _aliases(released)
    doc = released.cli.json("health", "--data", SAME)
    assert doc["passed"] is True, doc["breaches"]
    assert doc["version"] == 1 and doc["rows"] == 3000
    assert doc["failing"] == [] and doc["breaches"] == []
    assert "training-time binned summary" in doc["psi_baseline"]
    assert "no date column" in doc["rows_note"]
    assert set(doc["psi"]) >= {"score", "age", "used_gb", "smartphone_brand_group"}
    assert max(doc["psi"].values()) < 0.1
    m = doc["metric"]
    assert m["name"] == "roc_auc" and m["ci_low"] < m["value"] < m["ci_high"]
    assert m["at_release"] == pytest.approx(_released_metric(released, 1))
    assert _aliases(released) == before

    (run,) = _health_runs(released)
    assert run.info.run_id == doc["health_run_id"]
    assert run.data.metrics["roc_auc"] == pytest.approx(m["value"])
    assert run.data.metrics["psi_score"] == pytest.approx(doc["psi"]["score"])
    # `&` is not allowed in MLflow metric names: the column is logged under a safe key
    assert "psi.n_case_produkte_services-tarifdetails" in run.data.metrics
    assert run.data.tags["magenta.health.passed"] == "true"
    artifacts = released.cli.home / "artifacts" / run.info.run_id / "artifacts" / "health"
    assert (artifacts / "over_time.png").stat().st_size > 10_000
    logged = json.loads((artifacts / "health.json").read_text())
    assert logged["psi"] == pytest.approx(doc["psi"])


def _released_metric(t: Trained, version: int) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{t.cli.home / 'mlflow.db'}")
    tag = client.get_model_version("churn-classifier", str(version)).tags["release.evidence"]
    return float(json.loads(tag)["evidence"]["metrics"]["roc_auc"])


def test_drifted_batch_fails_names_the_features_alerts_and_moves_nothing(
    released: Trained, receiver: Receiver
) -> None:
    released.cli.env["TEST_HOOK"] = receiver.url("/hook")
    write_policy(
        released.cli.home,
        notify={"webhooks": [{"name": "ops", "kind": "slack", "url_env": "TEST_HOOK"}]},
    )
    before = _aliases(released)
    assert released.cli.json("health", "--data", SAME)["passed"] is True
    assert receiver.messages == []  # a healthy champion tells nobody

    result = released.cli("health", "--data", DRIFTED, "--json")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["passed"] is False
    # the generator's drift shifts age and usage: those are named, worst first
    assert {"age", "used_gb"} <= set(doc["failing"])
    assert all(doc["psi"][f] > 0.2 for f in doc["failing"])
    assert "failing features: " in result.stderr and "age" in result.stderr
    assert "nothing was moved" in result.stderr
    assert _aliases(released) == before

    (message,) = receiver.at("/hook")
    assert message.event() == "health_alert"
    text = json.loads(message.body)["text"]
    assert "champion health check failed" in text and "age" in text
    assert doc["notified"]["deliveries"][0]["ok"] is True

    runs = _health_runs(released)
    assert [r.data.tags["magenta.health.passed"] for r in runs] == ["true", "false"]
    assert runs[1].data.metrics["psi.age"] > 0.2


def test_a_metric_drop_beyond_the_ci_alone_is_a_breach(released: Trained) -> None:
    # the same distribution, but a floor no model reaches: the metric breach, no PSI breach
    write_policy(released.cli.home, health={"min_metric": 0.99})
    result = released.cli("health", "--data", SAME, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["failing"] == []
    assert doc["metric"]["breached"] is True and doc["metric"]["floor"] == 0.99
    assert "roc_auc" in doc["breaches"][0] and "below 0.9900" in doc["breaches"][0]


def test_the_label_window_picks_the_newest_closed_rows(released: Trained, tmp_path: Path) -> None:
    table = data.generate(11, 3000).table
    today = pd.Timestamp.now(tz="UTC").normalize()
    # 1000 rows each: labels not known yet (10 days old), newest closed (40 days), too old (100)
    table["snapshot_date"] = [today - pd.Timedelta(days=d) for d in (10, 40, 100) * 1000]
    path = tmp_path / "labelled.parquet"
    table.to_parquet(path, index=False)
    write_policy(
        released.cli.home,
        health={"date_column": "snapshot_date", "label_window_days": 30, "lookback_days": 28},
    )
    doc = released.cli.json("health", "--data", str(path))
    assert doc["rows"] == 1000
    assert "label window 30 days closed" in doc["rows_note"]


def test_unlabelled_rows_are_left_out_and_too_few_rows_are_refused(
    released: Trained, tmp_path: Path
) -> None:
    table = data.generate(11, 1000).table
    table[data.LABEL] = table[data.LABEL].astype("float64")
    table.loc[table.index[:900], data.LABEL] = None  # churn not known yet
    path = tmp_path / "labelled.parquet"
    table.to_parquet(path, index=False)
    result = released.cli("health", "--data", str(path))
    assert result.exit_code == 2
    assert "100 labelled rows" in result.stderr and "min_rows" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_without_a_training_summary_falls_back_to_its_evaluation_rows(
    released: Trained,
) -> None:
    # as for a team's own run: no training_bins.json on the champion's run
    summaries = list((released.cli.home / "artifacts").glob("*/artifacts/evaluation/*_bins.json"))
    assert len(summaries) == 3  # one per trained run
    for found in summaries:
        found.unlink()
    doc = released.cli.json("health", "--data", SAME)
    assert doc["psi_baseline"].startswith("evaluation rows of run ")
    assert "re-read from synthetic://" in doc["psi_baseline"]
    assert doc["passed"] is True and doc["psi"]["age"] < 0.1


def test_no_champion_is_refused(trained: Trained) -> None:
    result = trained.cli("health", "--data", SAME)
    assert result.exit_code == 1
    assert "no @champion" in result.stderr


def test_help_says_it_logs_a_run() -> None:
    from tests.conftest import make_cli

    result = make_cli(Path("unused"))("health", "--help")
    assert result.exit_code == 0
    assert "Not a read command" in result.stdout and "never moves an alias" in result.stdout
