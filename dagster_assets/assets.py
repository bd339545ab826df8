"""Assets. Each one calls the same `magenta_release` function as the CLI command it mirrors.

The training asset takes its rows from the `customer_features` table (a DuckDB table locally,
filled from the generator; the team's BigQuery export or GCS parquet in production), never
from the generator directly; `predictions` streams the `current_customers` table and, while a
`@challenger` waits for approval, shadow-scores it on the same rows into a separate file.
`champion_health` judges the champion weekly on `labelled_customers`."""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_assets.resources import CustomerTables, ReleaseStore
from magenta_release.core.metrics import HEADLINE_METRICS

DATA = "customer_data"
RELEASE = "release"
AFTER_RELEASE = "after_release"


def _local_table(
    tables: CustomerTables, name: str, seed: int, rows: int, label: bool, drift: float = 0.0
) -> str:
    """Fill a table of the local DuckDB database from the generator; its source URI."""
    from magenta_release.core.synthetic import LABEL, generate
    from magenta_release.io.sources import write_duckdb

    frame = generate(seed, rows, drift).table
    if not label:
        frame = frame.drop(columns=[LABEL])
    return write_duckdb(frame, Path(tables.database), name)


@dg.asset(group_name=DATA)
def customer_features(tables: CustomerTables) -> dg.Output[str]:
    """The labelled feature table the model trains on, as a source URI. Production names the
    team's table (`features_uri`); locally the generator fills a DuckDB table."""
    from magenta_release.io import sources

    uri = tables.features_uri or _local_table(
        tables, "customer_features", tables.seed, tables.rows, label=True
    )
    schema = sources.schema(sources.parse(uri))
    return dg.Output(uri, metadata={"source": uri, "columns": len(schema.names)})


@dg.asset(group_name=DATA)
def current_customers(tables: CustomerTables) -> dg.Output[str]:
    """Customers to score today (no label), as a source URI."""
    uri = tables.customers_uri or _local_table(
        tables, "current_customers", tables.scoring_seed, tables.scoring_rows, label=False
    )
    return dg.Output(uri, metadata={"source": uri})


@dg.asset(group_name=RELEASE)
def training_run(
    context: dg.AssetExecutionContext, release: ReleaseStore, customer_features: str
) -> dg.Output[dict[str, Any]]:
    """Train and track a candidate in MLflow (`magenta-release train --data ...`)."""
    from magenta_release.app.train import train

    ctx = release.open()
    result = train(ctx, data=customer_features, progress=context.log.info)
    meta: dict[str, Any] = {
        "run_id": result.run_id,
        "source": result.dataset_uri,
        "dataset_sha256": result.dataset_digest,
        **{k: result.metrics[k] for k in HEADLINE_METRICS},
    }
    link = release.ui_url(result.run_id, ctx.runs.experiment_id())
    if link:
        meta["mlflow_ui"] = dg.MetadataValue.url(link)
    return dg.Output({"run_id": result.run_id}, metadata=meta)


@dg.asset(
    group_name=RELEASE,
    check_specs=[
        dg.AssetCheckSpec(
            "gates_passed",
            asset="release_candidate",
            blocking=True,
            description="Every release gate passed: the version waits "
            "for a human approval (magenta-release approve).",
        )
    ],
)
def release_candidate(release: ReleaseStore, training_run: dict[str, Any]) -> dg.MaterializeResult:
    """Propose the run (`magenta-release propose`) as the pipeline's identity."""
    from magenta_release.app.propose import propose
    from magenta_release.core.gates import markdown
    from magenta_release.core.states import Status

    proposal = propose(release.open(), training_run["run_id"], note="weekly pipeline")
    passed = proposal.status == Status.PENDING
    return dg.MaterializeResult(
        metadata={
            "version": proposal.version,
            "status": str(proposal.status),
            "gates": dg.MetadataValue.md(markdown([g.to_json() for g in proposal.gates])),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="gates_passed",
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "version": proposal.version,
                    "status": str(proposal.status),
                    "failed": ", ".join(g.name for g in proposal.gates if not g.passed),
                },
            )
        ],
    )


@dg.asset(group_name=RELEASE, deps=["release_candidate"])
def champion_model(release: ReleaseStore) -> dg.Output[dict[str, Any]]:
    """Resolve `@champion` with the library's resolver and verify its SHA-256 manifest (no file
    paths in run config); fails on an integrity alert."""
    from magenta_release.app.services import models
    from magenta_release.core.errors import ReleaseError

    ctx = release.open()
    try:
        champion = models.resolve(ctx, "champion")
        with tempfile.TemporaryDirectory(prefix="dagster-champion-") as tmp:
            models.fetch(ctx, champion, Path(tmp))
    except ReleaseError as exc:
        raise dg.Failure(str(exc)) from exc
    info: dict[str, str | int] = {
        "version": champion.version,
        "run_id": champion.run_id,
        "approved_by": champion.tags.get("release.approved_by", ""),
        "approved_at": champion.tags.get("release.approved_at", ""),
        "manifest_sha256": champion.tags.get("release.manifest_sha256", ""),
    }
    return dg.Output(info, metadata=info)


@dg.asset(group_name=RELEASE)
def predictions(
    release: ReleaseStore,
    tables: CustomerTables,
    champion_model: dict[str, Any],
    current_customers: str,
) -> dg.Output[dict[str, Any]]:
    """Churn scores of current customers by the verified champion, streamed batch by batch
    into a parquet file beside the local database; each row names the model version."""
    from magenta_release.app.health import shadow_score
    from magenta_release.app.predict import predict
    from magenta_release.core.errors import ReleaseError

    folder = Path(tables.database).parent
    out, shadow_out = folder / "predictions.parquet", folder / "shadow_predictions.parquet"
    ctx = release.open()
    try:
        result = predict(ctx, current_customers, out, str(champion_model["version"]))
        # The challenger on the same rows, kept apart: never served, shown to the approver.
        shadow = shadow_score(ctx, current_customers, shadow_out)
    except ReleaseError as exc:
        raise dg.Failure(str(exc)) from exc
    info: dict[str, Any] = {
        "rows": result.rows,
        "model_version": result.model_version,
        "scores": str(out),
        "shadow": shadow.to_json() if shadow else None,
    }
    meta: dict[str, Any] = {
        "rows": result.rows,
        "model_version": result.model_version,
        "scores": dg.MetadataValue.path(str(out)),
        "shadow_version": shadow.version if shadow else "none (no @challenger)",
    }
    if shadow:
        meta["shadow_scores"] = dg.MetadataValue.path(shadow.output)
        diff = _shadow_difference(ctx, out, shadow_out)
        meta |= {f"shadow_{k}": v for k, v in diff.items()}
        info["shadow"] |= diff
    return dg.Output(info, metadata=meta)


def _shadow_difference(ctx: Any, champion: Path, challenger: Path) -> dict[str, float]:
    """How the campaign list would change if the challenger were serving (rows in the same
    order in both files)."""
    import pandas as pd

    from magenta_release.core.drift import shadow_difference

    return shadow_difference(
        pd.read_parquet(champion, columns=["churn_score"])["churn_score"].to_numpy(),
        pd.read_parquet(challenger, columns=["churn_score"])["churn_score"].to_numpy(),
        ctx.policy.value.campaign_fraction,
    )


@dg.asset(group_name=DATA)
def labelled_customers(tables: CustomerTables) -> dg.Output[str]:
    """The newest labelled rows (churn known), as a source URI: what champion health judges
    the champion on. Production names the team's labelled export (`labelled_uri`); locally
    the generator fills a DuckDB table (`health_drift` > 0: a drifted population)."""
    uri = tables.labelled_uri or _local_table(
        tables,
        "labelled_customers",
        tables.health_seed,
        tables.health_rows,
        label=True,
        drift=tables.health_drift,
    )
    return dg.Output(uri, metadata={"source": uri})


@dg.asset(
    group_name=AFTER_RELEASE,
    check_specs=[
        dg.AssetCheckSpec(
            "champion_healthy",
            asset="champion_health",
            blocking=True,
            description="The champion's primary metric and PSI drift are within [health] of "
            "the release policy; a failure alerts (integrity_alert) and never moves an alias.",
        )
    ],
)
def champion_health(
    context: dg.AssetExecutionContext, release: ReleaseStore, labelled_customers: str
) -> dg.MaterializeResult:
    """Re-score @champion on the newest labelled rows (`magenta-release health --data ...`):
    primary metric with a bootstrap CI against its value at release, PSI of its score and
    inputs against its training rows; one MLflow run per check in `<model>-health`."""
    from magenta_release.app.health import check
    from magenta_release.core.drift import SCORE
    from magenta_release.core.errors import ReleaseError

    try:
        result = check(release.open(), labelled_customers)
    except ReleaseError as exc:
        raise dg.Failure(str(exc)) from exc
    if not result.passed:
        context.log.error("champion health: " + "; ".join(result.breaches))
    m = result.metric
    meta: dict[str, Any] = {
        "version": result.version,
        "rows": result.rows,
        "rows_note": result.rows_note,
        m.name: m.value,
        f"{m.name}_ci": f"[{m.ci_low:.4f}, {m.ci_high:.4f}]",
        f"{m.name}_at_release": m.at_release if m.at_release is not None else "unknown",
        "psi_score": result.psi.get(SCORE, float("nan")),
        "psi_baseline": result.psi_baseline,
        "health_run_id": result.health_run_id,
    }
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name="champion_healthy",
                passed=result.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "version": result.version,
                    "failing": ", ".join(result.failing),
                    "breaches": "; ".join(result.breaches) or "none",
                    "psi": dg.MetadataValue.json(result.psi),
                },
            )
        ],
    )
