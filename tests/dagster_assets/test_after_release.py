"""After release in Dagster, on real assets and a real store: champion health as a blocking
check on its own weekly schedule, and shadow scoring of @challenger beside the predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dagster_assets import assets
from dagster_assets.definitions import defs, weekly_health
from dagster_assets.resources import CustomerTables, ParquetJsonIOManager, ReleaseStore
from tests.conftest import ALICE, SMALL, SMALL_DATA_GATES, make_cli, write_policy

TRAIN = [assets.customer_features, assets.training_run, assets.release_candidate]
SERVE = [assets.champion_model, assets.current_customers, assets.predictions]
HEALTH = [assets.labelled_customers, assets.champion_health]


def _resources(tmp_path: Path, home: Path, drift: float = 0.0) -> dict[str, Any]:
    return {
        "release": ReleaseStore(home=str(home), identity="dagster"),
        "tables": CustomerTables(
            database=str(tmp_path / "analytics.duckdb"),
            seed=7,
            rows=SMALL,
            scoring_seed=99,
            scoring_rows=300,
            health_seed=11,
            health_rows=3000,
            health_drift=drift,
        ),
        "io_manager": ParquetJsonIOManager(base_dir=str(tmp_path / "dagster-data")),
    }


@pytest.fixture
def champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A store whose @champion came through the pipeline and a human approval."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "mlruns"
    cli = make_cli(home)
    assert cli("init").exit_code == 0
    write_policy(home, approval={"approvers": [ALICE], "four_eyes": True}, **SMALL_DATA_GATES)
    assert dg.materialize(TRAIN, resources=_resources(tmp_path, home)).success
    assert cli("approve", "1", "--reason", "baseline", "--yes", by=ALICE).exit_code == 0
    return {"cli": cli, "home": home, "tmp": tmp_path}


def test_health_job_and_weekly_schedule_are_defined() -> None:
    repo = defs.get_repository_def()
    job = repo.get_job("check_champion_health")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= {
        "labelled_customers",
        "champion_health",
    }
    assert weekly_health.job_name == "check_champion_health"
    assert weekly_health.cron_schedule == "0 6 * * 1"
    assert weekly_health.execution_timezone == "Europe/Berlin"
    spec = next(iter(assets.champion_health.check_specs))
    assert spec.blocking is True


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_same_distribution_passes_the_blocking_check(champion: dict[str, Any]) -> None:
    result = dg.materialize(HEALTH, resources=_resources(champion["tmp"], champion["home"]))
    assert result.success
    check = _check(result)
    assert check.passed
    assert check.metadata["failing"].value == ""
    meta = result.get_asset_materialization_events()[-1].materialization.metadata
    assert meta["version"].value == 1 and meta["rows"].value == 3000
    assert meta["health_run_id"].value


def test_drifted_batch_fails_the_check_names_features_and_moves_nothing(
    champion: dict[str, Any],
) -> None:
    resources = _resources(champion["tmp"], champion["home"], drift=0.6)
    result = dg.materialize(HEALTH, resources=resources, raise_on_error=False)
    check = _check(result)
    assert check.passed is False
    failing = str(check.metadata["failing"].value).split(", ")
    assert {"age", "used_gb"} <= set(failing)
    assert "PSI above 0.2" in str(check.metadata["breaches"].value)
    status = champion["cli"].json("status")
    assert status["champion"]["version"] == 1 and status["challenger"] is None


def test_shadow_scores_exist_with_a_challenger_and_not_without(champion: dict[str, Any]) -> None:
    tmp, home, cli = champion["tmp"], champion["home"], champion["cli"]
    resources = _resources(tmp, home)
    shadow = tmp / "shadow_predictions.parquet"

    served = dg.materialize(SERVE, resources=resources)
    assert served.success
    assert not shadow.exists()
    assert served.output_for_node("predictions")["shadow"] is None

    # the weekly pipeline proposes again: v2 waits as @challenger
    assert dg.materialize(TRAIN, resources=resources).success
    assert cli.json("status")["challenger"]["version"] == 2
    served = dg.materialize(SERVE, resources=resources)
    assert served.success
    live = pd.read_parquet(tmp / "predictions.parquet")
    shadowed = pd.read_parquet(shadow)
    assert (live["model_version"] == 1).all() and (shadowed["model_version"] == 2).all()
    assert len(shadowed) == len(live) == 300
    assert shadowed["rating_account_id"].tolist() == live["rating_account_id"].tolist()
    info = served.output_for_node("predictions")["shadow"]
    assert info["version"] == 2 and info["rows"] == 300
    assert info["campaign_size"] == 30

    # the challenger is rejected: the next scoring run leaves no stale shadow behind
    assert cli("reject", "2", "--reason", "not now", by=ALICE).exit_code == 0
    assert dg.materialize(SERVE, resources=resources).success
    assert not shadow.exists()
