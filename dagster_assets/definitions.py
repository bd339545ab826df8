"""The code location: assets, jobs, the weekly training and health schedules, the champion
sensor, resources."""

import dagster as dg

from dagster_assets import assets
from dagster_assets.resources import CustomerTables, ParquetJsonIOManager, ReleaseStore
from magenta_release.dagster import champion_moved_sensor

train_and_propose_job = dg.define_asset_job(
    "train_and_propose",
    selection=dg.AssetSelection.assets("customer_features", "training_run", "release_candidate"),
    description="Train a candidate and propose it; a human approves from the terminal.",
)
predictions_job = dg.define_asset_job(
    "refresh_predictions",
    selection=dg.AssetSelection.assets("champion_model", "current_customers", "predictions"),
    description="Score current customers with the verified @champion.",
)

health_job = dg.define_asset_job(
    "check_champion_health",  # not "champion_health": that is the asset's op
    selection=dg.AssetSelection.assets("labelled_customers", "champion_health"),
    description="Judge @champion on the newest labelled rows; alerts on a breach, moves nothing.",
)

weekly_training = dg.ScheduleDefinition(
    name="weekly_training",
    job=train_and_propose_job,
    cron_schedule="0 1 * * 1",  # Mondays 01:00
    execution_timezone="Europe/Berlin",
)


weekly_health = dg.ScheduleDefinition(
    name="weekly_health",
    job=health_job,
    cron_schedule="0 6 * * 1",  # Mondays 06:00, after the training run of 01:00
    execution_timezone="Europe/Berlin",
)


@dg.op(description="One reminder per version waiting too long for approval (release.remind).")
def send_reminders(context: dg.OpExecutionContext, release: ReleaseStore) -> None:
    from magenta_release.app.remind import remind

    sent = remind(release.open())
    for r in sent:
        if r.delivered is False:  # recorded on the version and shown by `status`
            context.log.warning(f"reminder for version {r.version} was not delivered")
    context.log.info(f"{len(sent)} reminders: versions {[r.version for r in sent]}")


@dg.job(description="Remind approvers of pending versions; expired ones are named.")
def remind_approvers() -> None:
    send_reminders()


daily_reminders = dg.ScheduleDefinition(
    name="daily_reminders",
    job=remind_approvers,
    cron_schedule="0 9 * * *",  # every day 09:00
    execution_timezone="Europe/Berlin",
)


# Refresh predictions once per move of @champion (approve or rollback from the terminal).
champion_moved = champion_moved_sensor(predictions_job)


defs = dg.Definitions(
    assets=[
        assets.customer_features,
        assets.current_customers,
        assets.training_run,
        assets.release_candidate,
        assets.champion_model,
        assets.predictions,
        assets.labelled_customers,
        assets.champion_health,
    ],
    jobs=[train_and_propose_job, predictions_job, remind_approvers, health_job],
    schedules=[weekly_training, daily_reminders, weekly_health],
    sensors=[champion_moved],
    resources={
        # Every value resolves from the run's environment when a run starts (never at import);
        # `make dagster` sets them for the local store, production on the code location.
        # An empty URI means: the local store / the generator's DuckDB tables.
        "release": ReleaseStore(
            tracking_uri=dg.EnvVar("MAGENTA_RELEASE_TRACKING_URI"),
            home=dg.EnvVar("MAGENTA_RELEASE_HOME"),
            identity=dg.EnvVar("MAGENTA_RELEASE_PIPELINE_USER"),
        ),
        "tables": CustomerTables(
            features_uri=dg.EnvVar("MAGENTA_RELEASE_FEATURES_URI"),
            customers_uri=dg.EnvVar("MAGENTA_RELEASE_CUSTOMERS_URI"),
            database=dg.EnvVar("MAGENTA_RELEASE_ANALYTICS_DB"),
        ),
        # Outside the MLflow store: these files hold customer identifiers.
        "io_manager": ParquetJsonIOManager(base_dir=dg.EnvVar("MAGENTA_RELEASE_DAGSTER_DATA")),
    },
)
