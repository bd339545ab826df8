"""The team's assets: `features` and `label` as pandas frames, and `trained_model`, which fits
the team's own pipeline and logs it with plain MLflow calls. Nothing here imports the release
tool except its synthetic data generator and, for the tracking URI, `magenta_release.io.fluent`."""

from typing import Any

import dagster as dg
import pandas as pd

from examples.team_pipeline.resources import EvaluationFiles, TeamData, TeamMlflow

GROUP = "team"
KEY = "rating_account_id"
TARGET = "has_churned"
IDENTIFIERS = ("rating_account_id", "customer_id")
CATEGORICAL = ["smartphone_brand_group"]
# The types skops must trust to load this pipeline (`magenta_release.io.fluent.skops_trusted_types`
# lists them for any model); without them `mlflow.sklearn.log_model` refuses to save.
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"]
# Explicit requirements: MLflow's inference starts a subprocess (~3 s) on every log_model.
PIP_REQUIREMENTS = ["scikit-learn", "xgboost", "skops"]


@dg.asset(group_name=GROUP)
def features(data: TeamData) -> pd.DataFrame:
    """One row per rating account: identifiers and model features, no label."""
    from magenta_release.core.synthetic import generate

    return generate(data.seed, data.rows).table.drop(columns=[TARGET])


@dg.asset(group_name=GROUP)
def label(data: TeamData) -> pd.DataFrame:
    """`has_churned` per rating account."""
    from magenta_release.core.synthetic import generate

    return generate(data.seed, data.rows).table.loc[:, [KEY, TARGET]]


def build_pipeline(feature_columns: list[str], seed: int) -> Any:
    """The team's model: one-hot brands, other columns as they are, gradient-boosted trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier

    numeric = [c for c in feature_columns if c not in CATEGORICAL]
    encode = ColumnTransformer(
        [
            ("brand", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numbers", "passthrough", numeric),
        ]
    )
    trees = XGBClassifier(n_estimators=60, max_depth=3, learning_rate=0.1, random_state=seed)
    return Pipeline([("encode", encode), ("trees", trees)])


def _metrics(y: pd.Series, scores: Any) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "brier": float(brier_score_loss(y, scores)),
    }


@dg.asset(group_name=GROUP)
def trained_model(
    context: dg.AssetExecutionContext,
    features: pd.DataFrame,
    label: pd.DataFrame,
    mlflow_store: TeamMlflow,
    evaluation: EvaluationFiles,
    data: TeamData,
) -> dg.Output[dict[str, Any]]:
    """Fit the pipeline on 75 % of the accounts, keep the other 25 % as evaluation rows in a
    parquet file, and log one MLflow run: params, metrics, the skops model and the evaluation
    rows as an input (their path and MLflow's digest, never the rows)."""
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.model_selection import train_test_split

    from magenta_release.io.fluent import tracking

    table = features.merge(label, on=KEY, validate="one_to_one")
    columns = [c for c in table.columns if c not in (*IDENTIFIERS, TARGET)]
    fit_rows, eval_rows = train_test_split(
        table, test_size=0.25, stratify=table[TARGET], random_state=data.seed
    )
    pipe = build_pipeline(columns, data.seed)
    pipe.fit(fit_rows[columns], fit_rows[TARGET])
    scores = pipe.predict_proba(eval_rows[columns])[:, 1]

    experiment = MlflowClient(mlflow_store.tracking_uri).get_experiment_by_name(
        mlflow_store.experiment
    )
    if experiment is None:
        raise dg.Failure(
            f"MLflow experiment {mlflow_store.experiment!r} does not exist at "
            f"{mlflow_store.tracking_uri}; run `magenta-release init` for a local store"
        )
    # mlflow.start_run and log_model have no per-call URI: set it for this block only.
    with (
        tracking(mlflow_store.tracking_uri),
        mlflow.start_run(experiment_id=experiment.experiment_id, run_name="team-xgb") as run,
    ):
        source = evaluation.path_for(run.info.run_id)
        eval_rows.to_parquet(source, index=False)
        mlflow.log_params({"n_estimators": 60, "max_depth": 3, "seed": data.seed})
        mlflow.log_metrics(_metrics(eval_rows[TARGET], scores))
        mlflow.sklearn.log_model(
            pipe,
            name="churn_model",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=PIP_REQUIREMENTS,
        )
        # Read back what was written, so MLflow's digest is of the rows as stored. A name per
        # run: MLflow reuses the first source logged for the same (name, digest).
        stored = pd.read_parquet(source)
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            stored, source=source, targets=TARGET, name=f"evaluation-{run.info.run_id}"
        )
        mlflow.log_input(dataset, context="evaluation")
    context.log.info(f"logged run {run.info.run_id}, evaluation rows at {source}")
    return dg.Output(
        {"run_id": run.info.run_id},
        metadata={"run_id": run.info.run_id, "evaluation_rows": len(eval_rows)},
    )
