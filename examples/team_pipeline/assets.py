"""The team's assets: get_data -> features/label -> df_input -> split -> trained_model ->
predictions, on the table their dbt project builds."""

from datetime import date
from typing import Any

import dagster as dg
import pandas as pd

import magenta_release.dagster as mr
from examples.team_pipeline.resources import Warehouse
from magenta_release import sdk

TARGET = "left_within_60d"
CATEGORICAL = ["tariff"]
FEATURES = [
    "tariff",
    "tenure_days",
    "monthly_fee",
    "data_used_gb",
    "n_case_billing",
    "n_case_network",
    "has_magenta_one",
]


@dg.asset
def get_data(warehouse: Warehouse) -> pd.DataFrame:
    """The dbt table, one row per customer."""
    return warehouse.read("churn_features")


@dg.asset
def features(get_data: pd.DataFrame) -> pd.DataFrame:
    return get_data.drop(columns=[TARGET]).set_index("customer_id")


@dg.asset
def label(get_data: pd.DataFrame) -> pd.DataFrame:
    return get_data.set_index("customer_id")[[TARGET]]


@dg.asset
def df_input(features: pd.DataFrame, label: pd.DataFrame) -> pd.DataFrame:
    return features.join(label)


@dg.multi_asset(outs={"train_set": dg.AssetOut(), "test_set": dg.AssetOut()})
def split(df_input: pd.DataFrame, release: mr.ReleaseStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    train_set, test_set = sdk.split(df_input, release)  # the release policy's rule
    return train_set, test_set


def build_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier

    numeric = [c for c in FEATURES if c not in CATEGORICAL]
    encode = ColumnTransformer(
        [
            ("tariff", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numbers", "passthrough", numeric),
        ]
    )
    trees = XGBClassifier(n_estimators=120, max_depth=3, learning_rate=0.1, random_state=42)
    return Pipeline([("encode", encode), ("trees", trees)])


@dg.asset
def trained_model(
    train_set: pd.DataFrame, test_set: pd.DataFrame, release: mr.ReleaseStore
) -> dg.Output[str]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    pipe = build_pipeline().fit(train_set[FEATURES], train_set[TARGET])
    scores = pipe.predict_proba(test_set[FEATURES])[:, 1]
    metrics = {
        "roc_auc_score": float(roc_auc_score(test_set[TARGET], scores)),
        "average_precision_score": float(average_precision_score(test_set[TARGET], scores)),
    }
    run = sdk.log_governed_run(pipe, train_set, test_set, store=release, metrics=metrics)
    return dg.Output(run.run_id, metadata={**metrics, "run_id": run.run_id})


@dg.asset
def predictions(champion: mr.ChampionModel, features: pd.DataFrame) -> pd.DataFrame:
    scored = champion.score(features[FEATURES])  # the verified @champion, named on each row
    scored["run_dt"] = date.today().isoformat()
    return scored
