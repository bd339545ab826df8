"""Factories for the two automations a team's code location needs: propose each new run, and
act once per move of `@champion`.

No `from __future__ import annotations` here: Dagster reads the op's config annotation at
definition time."""

from typing import Any

import dagster as dg

from magenta_release.dagster.resources import ReleaseStore

RUN_ID_METADATA = "run_id"  # the materialization metadata entry naming the MLflow run


class ProposeConfig(dg.Config):
    run_id: str


def propose_on_new_run(
    asset: str | dg.AssetKey = "trained_model",
    *,
    name: str = "propose_new_run",
    note: str = "proposed by the pipeline",
) -> tuple[dg.SensorDefinition, dg.JobDefinition]:
    """A sensor on `asset` and the job it launches: each materialization whose metadata names
    a run (`run_id`) is proposed once (the run id is the run key), as the identity of the
    `release` resource (a `ReleaseStore`). The job fails when the gates fail, naming them; a
    human approves from the terminal."""
    key = asset if isinstance(asset, dg.AssetKey) else dg.AssetKey(asset)

    @dg.op(name=f"{name}_op")
    def propose_run(
        context: dg.OpExecutionContext, config: ProposeConfig, release: ReleaseStore
    ) -> dict[str, Any]:
        from magenta_release.app.propose import propose
        from magenta_release.core.errors import ReleaseError
        from magenta_release.core.states import Status

        try:
            proposal = propose(release.open(), config.run_id, note=note)
        except ReleaseError as exc:  # refused before any version exists: say why
            raise dg.Failure(description=str(exc)) from exc
        if proposal.status == Status.FAILED:
            raise dg.Failure(
                description=f"version {proposal.version} failed its gates",
                metadata={g.name: g.detail for g in proposal.gates if not g.passed},
            )
        context.log.info(f"version {proposal.version} is {proposal.status}")
        return proposal.to_json()  # type: ignore[no-any-return]

    @dg.job(name=f"{name}_job", description=f"Propose a new run of {key.to_user_string()}.")
    def propose_job() -> None:
        propose_run()

    @dg.asset_sensor(asset_key=key, job=propose_job, name=name)
    def new_run(
        context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
    ) -> dg.RunRequest | dg.SkipReason:
        materialization = asset_event.asset_materialization
        entry = materialization.metadata.get(RUN_ID_METADATA) if materialization else None
        if entry is None:
            return dg.SkipReason(f"{key.to_user_string()} materialized without a run_id")
        run_id = str(entry.value)
        return dg.RunRequest(
            run_key=run_id,
            run_config=dg.RunConfig(ops={f"{name}_op": ProposeConfig(run_id=run_id)}),
            tags={"magenta/run_id": run_id},
        )

    return new_run, propose_job


def champion_moved_sensor(
    job: Any,
    *,
    name: str = "champion_moved",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor that launches `job` once per move of `@champion` (an approve or a rollback,
    read from the audit log of the `release` resource's store), keyed by the move's audit
    event."""

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
    )
    def champion_moved(
        context: dg.SensorEvaluationContext, release: ReleaseStore
    ) -> dg.SensorResult | dg.SkipReason:
        from magenta_release.core.lifecycle import last_champion_move

        last = last_champion_move(release.open().log.events)
        if last is None:
            return dg.SkipReason("no champion yet")
        cursor = f"champion-v{last.champion_after}-event{last.seq}"
        if context.cursor == cursor:
            return dg.SkipReason(f"@champion unchanged (v{last.champion_after})")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=cursor,
                    tags={
                        "magenta/champion_version": str(last.champion_after),
                        "magenta/audit_event": str(last.seq),
                    },
                )
            ],
            cursor=cursor,
        )

    return champion_moved
