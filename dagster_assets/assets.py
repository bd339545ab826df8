"""Assets. Each one calls the same `magenta_release` function as the CLI command it mirrors."""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dagster_assets.resources import DataSpec, ReleaseStore
from magenta_release import data as churn_data

DATA = "churn_data"
RELEASE = "release"


@dg.multi_asset(
    outs={
        "accounts": dg.AssetOut(description="Rating accounts with contract facts and label."),
        "usage": dg.AssetOut(description="Monthly usage, four months per account."),
        "interactions": dg.AssetOut(description="Service cases per customer and topic."),
    },
    group_name=DATA,
)
def raw_tables(data_spec: DataSpec) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The seeded synthetic source tables (one generator stream, as `train` uses)."""
    return churn_data.generate_tables(data_spec.seed, data_spec.rows)


@dg.asset(group_name=DATA)
def features(
    accounts: pd.DataFrame, usage: pd.DataFrame, interactions: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """One row per account: identifiers, model inputs and label."""
    table = churn_data.build_features(accounts, usage, interactions)
    return dg.Output(
        table, metadata={"rows": len(table), "dataset_sha256": churn_data.frame_digest(table)}
    )


@dg.asset(group_name=DATA)
def churn_label(features: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """The label per account (`has_churned`)."""
    label = features.loc[:, ["rating_account_id", churn_data.LABEL]]
    return dg.Output(label, metadata={"churn_rate": float(label[churn_data.LABEL].mean())})


@dg.asset(group_name=RELEASE, deps=["churn_label"])
def training_run(
    context: dg.AssetExecutionContext,
    release: ReleaseStore,
    data_spec: DataSpec,
    features: pd.DataFrame,
) -> dg.Output[dict[str, Any]]:
    """Train and track a candidate in MLflow (`magenta-release train`)."""
    from magenta_release.train import train

    store = release.open()
    result = train(
        store,
        rows=data_spec.rows,
        seed=data_spec.seed,
        by=release.identity,
        progress=context.log.info,
    )
    if result.dataset_digest != churn_data.frame_digest(features):
        raise dg.Failure("the run was trained on different data than the features asset")
    meta: dict[str, Any] = {
        "run_id": result.run_id,
        "dataset_sha256": result.dataset_digest,
        **{k: result.metrics[k] for k in ("roc_auc", "pr_auc", "lift_at_10", "brier")},
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
    from magenta_release.release import PENDING, propose

    proposal = propose(
        release.open(), training_run["run_id"], by=release.identity, note="weekly pipeline"
    )
    table = "\n".join(
        ["| gate | result | detail |", "| --- | --- | --- |"]
        + [f"| {g.name} | {'pass' if g.passed else 'FAIL'} | {g.detail} |" for g in proposal.gates]
    )
    passed = proposal.status == PENDING
    return dg.MaterializeResult(
        metadata={
            "version": proposal.version,
            "status": proposal.status,
            "gates": dg.MetadataValue.md(table),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="gates_passed",
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "version": proposal.version,
                    "status": proposal.status,
                    "failed": ", ".join(g.name for g in proposal.gates if not g.passed),
                },
            )
        ],
    )


@dg.asset(group_name=RELEASE, deps=["release_candidate"])
def champion_model(release: ReleaseStore) -> dg.Output[dict[str, Any]]:
    """Resolve `@champion` and verify its SHA-256 manifest (no file paths in run config)."""
    from magenta_release import serving

    store = release.open()
    champion = store.alias("champion")
    if champion is None:
        raise dg.Failure("no @champion yet: approve a version with `magenta-release approve`")
    with tempfile.TemporaryDirectory(prefix="dagster-champion-") as tmp:
        serving.fetch_verified(store, champion, Path(tmp))
    info = {
        "version": champion.version,
        "run_id": champion.run_id,
        "approved_by": champion.tags.get("release.approved_by", ""),
        "approved_at": champion.tags.get("release.approved_at", ""),
        "manifest_sha256": champion.tags.get("release.manifest_sha256", ""),
    }
    return dg.Output(info, metadata=info)


@dg.asset(group_name=DATA)
def current_customers(data_spec: DataSpec) -> pd.DataFrame:
    """Customers to score today: a population separate from training, without labels."""
    table = churn_data.generate(data_spec.scoring_seed, data_spec.scoring_rows).table
    return table.loc[:, [*churn_data.IDENTIFIERS, *churn_data.FEATURES]]


@dg.asset(group_name=RELEASE)
def predictions(
    release: ReleaseStore, champion_model: dict[str, Any], current_customers: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    """Churn scores of current customers by the verified champion; each row names the model
    version that scored it."""
    from magenta_release.predict import predict_frame

    scored = predict_frame(release.open(), current_customers, str(champion_model["version"]))
    return dg.Output(
        scored,
        metadata={
            "rows": len(scored),
            "model_version": int(champion_model["version"]),
            "mean_score": float(scored["churn_score"].mean()),
        },
    )
