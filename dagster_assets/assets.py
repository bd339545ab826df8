"""Assets. Each one calls the same `magenta_release` function as the CLI command it mirrors.

The training asset takes its rows from the `customer_features` table (a DuckDB table locally,
filled from the generator; the team's BigQuery export or GCS parquet in production), never
from the generator directly; `predictions` streams the `current_customers` table."""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from dagster_assets.resources import CustomerTables, ReleaseStore
from magenta_release.evaluate import HEADLINE_METRICS

DATA = "customer_data"
RELEASE = "release"


def _local_table(tables: CustomerTables, name: str, seed: int, rows: int, label: bool) -> str:
    """Fill a table of the local DuckDB database from the generator; its source URI."""
    from magenta_release.data import LABEL, generate
    from magenta_release.sources import write_duckdb

    frame = generate(seed, rows).table
    if not label:
        frame = frame.drop(columns=[LABEL])
    return write_duckdb(frame, Path(tables.database), name)


@dg.asset(group_name=DATA)
def customer_features(tables: CustomerTables) -> dg.Output[str]:
    """The labelled feature table the model trains on, as a source URI. Production names the
    team's table (`features_uri`); locally the generator fills a DuckDB table."""
    from magenta_release import sources

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
    from magenta_release.train import train

    store = release.open()
    result = train(store, data=customer_features, by=release.identity, progress=context.log.info)
    meta: dict[str, Any] = {
        "run_id": result.run_id,
        "source": result.dataset_uri,
        "dataset_sha256": result.dataset_digest,
        **{k: result.metrics[k] for k in HEADLINE_METRICS},
    }
    link = release.ui_url(result.run_id, store.experiment_id())
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
    from magenta_release.gates import markdown
    from magenta_release.release import propose
    from magenta_release.states import Status

    proposal = propose(
        release.open(), training_run["run_id"], by=release.identity, note="weekly pipeline"
    )
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
    from magenta_release import model_files
    from magenta_release.errors import ReleaseError
    from magenta_release.predict import resolve

    store = release.open()
    try:
        champion = resolve(store, "champion")
        with tempfile.TemporaryDirectory(prefix="dagster-champion-") as tmp:
            model_files.fetch_verified(store, champion, Path(tmp))
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
    from magenta_release.errors import ReleaseError
    from magenta_release.predict import predict

    out = Path(tables.database).parent / "predictions.parquet"
    try:
        result = predict(release.open(), current_customers, out, str(champion_model["version"]))
    except ReleaseError as exc:
        raise dg.Failure(str(exc)) from exc
    info = {"rows": result.rows, "model_version": result.model_version, "scores": str(out)}
    return dg.Output(
        info,
        metadata={
            "rows": result.rows,
            "model_version": result.model_version,
            "scores": dg.MetadataValue.path(str(out)),
        },
    )
