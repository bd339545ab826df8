"""The churn model: one-hot brand group + XGBoost, with typed, validated hyper-parameters."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from magenta_release.data import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from magenta_release.errors import BadInput

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# The only types skops has to trust to load this pipeline (RESEARCH.md). Anything else in a
# model file makes loading fail instead of executing it.
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"]

PARAM_TYPES: dict[str, type] = {
    "n_estimators": int,
    "max_depth": int,
    "learning_rate": float,
    "subsample": float,
    "colsample_bytree": float,
    "min_child_weight": float,
    "reg_lambda": float,
    "reg_alpha": float,
    "gamma": float,
    "scale_pos_weight": float,
    "max_bin": int,
}
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 4,
    "learning_rate": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 1.0,
}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Parse `KEY=VALUE` strings into typed XGBoost parameters; BadInput on anything else."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise BadInput(f"--param {pair!r} is not KEY=VALUE; e.g. --param max_depth=6")
        if key not in PARAM_TYPES:
            raise BadInput(
                f"--param {key!r} is not a tunable parameter; "
                f"choose from {', '.join(sorted(PARAM_TYPES))}"
            )
        kind = PARAM_TYPES[key]
        if not _NUMBER.match(value) or (kind is int and not value.lstrip("+-").isdigit()):
            raise BadInput(
                f"--param {key}={value!r} must be {'an integer' if kind is int else 'a number'}"
            )
        number = kind(value)
        if number < 0 or (key in {"n_estimators", "max_depth", "max_bin"} and number < 1):
            raise BadInput(f"--param {key}={value} is out of range; use a positive value")
        if key in {"subsample", "colsample_bytree"} and not 0 < number <= 1:
            raise BadInput(f"--param {key}={value} is out of range; use a value in (0, 1]")
        if key == "n_estimators" and number > 5000:
            raise BadInput(f"--param n_estimators={value} is out of range; use at most 5000")
        params[key] = number
    return params


def build_pipeline(params: dict[str, Any], seed: int) -> Pipeline:
    """Preprocessing + XGBoost. Missing numbers stay missing: XGBoost learns where they go."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from xgboost import XGBClassifier

    pre = ColumnTransformer(
        [
            (
                "brand",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
            ("numeric", "passthrough", list(NUMERIC_FEATURES)),
        ],
        verbose_feature_names_out=False,
    )
    xgb = XGBClassifier(
        **{**DEFAULT_PARAMS, **params},
        tree_method="hist",
        eval_metric="logloss",
        random_state=seed,
        n_jobs=2,
    )
    return Pipeline([("preprocess", pre), ("model", xgb)])


def feature_importance(pipeline: Pipeline) -> dict[str, float]:
    """Gain-based importance per transformed feature name."""
    names = list(pipeline.named_steps["preprocess"].get_feature_names_out())
    values = pipeline.named_steps["model"].feature_importances_
    return {str(n): float(v) for n, v in zip(names, values, strict=True)}
