"""The code location: assets, jobs, the weekly schedule, the champion sensor, resources."""

import os
from pathlib import Path

import dagster as dg

from dagster_assets import assets
from dagster_assets.resources import DataSpec, ParquetJsonIOManager, ReleaseStore
from magenta_release.settings import disable_telemetry

disable_telemetry()

train_and_propose_job = dg.define_asset_job(
    "train_and_propose",
    selection=dg.AssetSelection.assets(
        "accounts",
        "usage",
        "interactions",
        "features",
        "churn_label",
        "training_run",
        "release_candidate",
    ),
    description="Train a candidate and propose it; a human approves from the terminal.",
)
predictions_job = dg.define_asset_job(
    "refresh_predictions",
    selection=dg.AssetSelection.assets("champion_model", "current_customers", "predictions"),
    description="Score current customers with the verified @champion.",
)

weekly_training = dg.ScheduleDefinition(
    name="weekly_training",
    job=train_and_propose_job,
    cron_schedule="0 1 * * 1",  # Mondays 01:00
    execution_timezone="Europe/Berlin",
)


@dg.sensor(
    job=predictions_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
)
def champion_moved(
    context: dg.SensorEvaluationContext, release: ReleaseStore
) -> dg.SensorResult | dg.SkipReason:
    """Refresh predictions once per move of @champion (approve or rollback from the terminal)."""
    from magenta_release import audit

    store = release.open()
    moves = [e for e in audit.events(store) if e.action in {"approve", "rollback"}]
    if not moves:
        return dg.SkipReason("no champion yet")
    last = moves[-1]
    key = f"champion-v{last.champion_after}-event{last.seq}"
    if context.cursor == key:
        return dg.SkipReason(f"@champion unchanged (v{last.champion_after})")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                tags={
                    "magenta/champion_version": str(last.champion_after),
                    "magenta/audit_event": str(last.seq),
                },
            )
        ],
        cursor=key,
    )


def _secrets() -> dict[str, dg.EnvVar]:
    """MLflow credentials for the pipeline's service identity, resolved at run time from the
    environment (never stored in run config or shown in the UI); absent in local mode."""
    names = {
        "mlflow_username": "MAGENTA_RELEASE_MLFLOW_USERNAME",
        "mlflow_password": "MAGENTA_RELEASE_MLFLOW_PASSWORD",
    }
    return {field: dg.EnvVar(var) for field, var in names.items() if os.environ.get(var)}


def _home(*parts: str) -> str:
    return str(Path(os.environ.get("MAGENTA_RELEASE_HOME", "mlruns")).joinpath(*parts))


defs = dg.Definitions(
    assets=[
        assets.raw_tables,
        assets.features,
        assets.churn_label,
        assets.training_run,
        assets.release_candidate,
        assets.champion_model,
        assets.current_customers,
        assets.predictions,
    ],
    jobs=[train_and_propose_job, predictions_job],
    schedules=[weekly_training],
    sensors=[champion_moved],
    resources={
        "release": ReleaseStore(
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
            home=_home(),
            identity=os.environ.get("MAGENTA_RELEASE_PIPELINE_USER", "dagster"),
            **_secrets(),
        ),
        "data_spec": DataSpec(),
        # Outside the MLflow store: these files hold customer identifiers.
        "io_manager": ParquetJsonIOManager(
            base_dir=os.environ.get(
                "MAGENTA_RELEASE_DAGSTER_DATA",
                str(Path(os.environ.get("DAGSTER_HOME", ".dagster_home")) / "data"),
            )
        ),
    },
)
