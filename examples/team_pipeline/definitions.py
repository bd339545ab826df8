"""The team's code location with the release tool joined in: a sensor notices each new
`trained_model` materialization and launches `propose_run`, which proposes that run as the
pipeline's identity. A human approves from the terminal (`magenta-release approve`).

Environment, read when a run starts: MLFLOW_TRACKING_URI (the store both sides use),
MAGENTA_RELEASE_HOME (the local store folder, for its policy), MAGENTA_RELEASE_PIPELINE_USER
(who proposes), TEAM_EVALUATION_DIR (evaluation rows), TEAM_DAGSTER_DATA (asset files)."""

from typing import Any

import dagster as dg

from dagster_assets.resources import ParquetJsonIOManager, ReleaseStore
from examples.team_pipeline import assets
from examples.team_pipeline.resources import EvaluationFiles, TeamData, TeamMlflow

training_job = dg.define_asset_job(
    "team_training", selection=dg.AssetSelection.groups(assets.GROUP)
)


class ProposeConfig(dg.Config):  # type: ignore[misc]
    run_id: str


@dg.op(description="Propose one MLflow run (magenta_release.app.propose.propose).")
def propose_run(
    context: dg.OpExecutionContext, config: ProposeConfig, release: ReleaseStore
) -> dict[str, Any]:
    from magenta_release.app.propose import propose
    from magenta_release.core.errors import ReleaseError
    from magenta_release.core.states import Status

    try:
        proposal = propose(release.open(), config.run_id, note="team pipeline")
    except ReleaseError as exc:  # refused before any version exists: say why, fail the run
        raise dg.Failure(description=str(exc)) from exc
    failed = [g for g in proposal.gates if not g.passed]
    if proposal.status == Status.FAILED:
        raise dg.Failure(
            description=f"version {proposal.version} failed its gates",
            metadata={g.name: g.detail for g in failed},
        )
    context.log.info(f"version {proposal.version} is {proposal.status}")
    return proposal.to_json()


@dg.job(description="Propose a run of the team's pipeline for release.")
def propose_job() -> None:
    propose_run()


@dg.asset_sensor(asset_key=dg.AssetKey("trained_model"), job=propose_job)
def new_training_run(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest | dg.SkipReason:
    """One proposal per new run: the run id comes from the materialization's metadata."""
    materialization = asset_event.asset_materialization
    entry = materialization.metadata.get("run_id") if materialization else None
    if entry is None:
        return dg.SkipReason("trained_model materialized without a run_id")
    run_id = str(entry.value)
    return dg.RunRequest(
        run_key=run_id,
        run_config=dg.RunConfig(ops={"propose_run": ProposeConfig(run_id=run_id)}),
        tags={"magenta/run_id": run_id},
    )


def resources() -> dict[str, Any]:
    """Every value resolves from the environment when a run starts."""
    return {
        "mlflow_store": TeamMlflow(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
        "evaluation": EvaluationFiles(base_dir=dg.EnvVar("TEAM_EVALUATION_DIR")),
        "data": TeamData(),
        "release": ReleaseStore(
            tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
            home=dg.EnvVar("MAGENTA_RELEASE_HOME"),
            identity=dg.EnvVar("MAGENTA_RELEASE_PIPELINE_USER"),
        ),
        # Parquet and JSON files, not Dagster's default pickles.
        "io_manager": ParquetJsonIOManager(base_dir=dg.EnvVar("TEAM_DAGSTER_DATA")),
    }


defs = dg.Definitions(
    assets=[assets.features, assets.label, assets.trained_model],
    jobs=[training_job, propose_job],
    sensors=[new_training_run],
    resources=resources(),
)
