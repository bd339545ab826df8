"""The model a team's own training code fits in the bring-your-own tests: one-hot brands,
other columns as they are, gradient-boosted trees (what examples/team_pipeline did before it
moved to its own table)."""

from __future__ import annotations

from typing import Any

TARGET = "has_churned"
IDENTIFIERS = ("rating_account_id", "customer_id")
CATEGORICAL = ["smartphone_brand_group"]


def build_pipeline(feature_columns: list[str], seed: int) -> Any:
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
