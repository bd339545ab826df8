"""The churn model: preprocessing built from the data contract + XGBoost, with bounded,
validated hyper-parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from magenta_release.core.errors import BadInput
from magenta_release.core.extras import require

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# The only types skops has to trust to load this pipeline (found by `skops.io.get_untrusted_types`
# on a saved pipeline; tests/test_train.py loads one with exactly these). Anything else in a
# model file makes loading fail instead of executing it. scikit-learn 1.5 and 1.6 keep a
# ColumnTransformer's remainder columns in `_RemainderColsList` (a list of column names; gone
# in 1.7): without it a pipeline saved at the floor of the supported range (make test-compat)
# cannot be saved or loaded.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "sklearn.compose._column_transformer._RemainderColsList",
]


class XGBParams(BaseModel):
    """The tunable XGBoost parameters with the bounds a churn model needs: values outside
    them (`learning_rate=1e999`, `max_bin=1`, `max_depth=99999999999`) crash or hang XGBoost,
    so they are refused before a run is created."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    n_estimators: int = Field(default=200, ge=1, le=5000)
    max_depth: int = Field(default=4, ge=1, le=32)
    learning_rate: float = Field(default=0.1, gt=0.0, le=1.0)
    subsample: float = Field(default=0.9, ge=0.01, le=1.0)
    colsample_bytree: float = Field(default=0.9, ge=0.01, le=1.0)
    min_child_weight: float = Field(default=1.0, ge=0.0, le=1000.0)
    reg_lambda: float | None = Field(default=None, ge=0.0, le=1000.0)
    reg_alpha: float | None = Field(default=None, ge=0.0, le=1000.0)
    gamma: float | None = Field(default=None, ge=0.0, le=1000.0)
    scale_pos_weight: float | None = Field(default=None, gt=0.0, le=1000.0)
    max_bin: int | None = Field(default=None, ge=2, le=1024)


DEFAULT_PARAMS: dict[str, Any] = XGBParams().model_dump(exclude_none=True)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """Parse `KEY=VALUE` strings into bounded XGBoost parameters; BadInput on anything else."""
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise BadInput(f"--param {pair!r} is not KEY=VALUE; e.g. --param max_depth=6")
        if key not in XGBParams.model_fields:
            raise BadInput(
                f"--param {key!r} is not a tunable parameter; "
                f"choose from {', '.join(sorted(XGBParams.model_fields))}"
            )
        raw[key] = value
    try:
        parsed = XGBParams.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(_param_error(exc, raw)) from None
    return {k: v for k, v in parsed.model_dump(exclude_none=True).items() if k in raw}


def _param_error(exc: ValidationError, raw: dict[str, str]) -> str:
    first = exc.errors()[0]
    key = str(first["loc"][0])
    value = raw.get(key, "")
    if first["type"] in {"int_parsing", "int_from_float"}:
        return f"--param {key}={value!r} must be an integer"
    if first["type"] in {"float_parsing", "finite_number"}:
        return f"--param {key}={value!r} must be a number"
    field = XGBParams.model_fields[key]
    low = next((getattr(m, a) for m in field.metadata for a in ("ge", "gt") if hasattr(m, a)), "?")
    high = next((getattr(m, a) for m in field.metadata for a in ("le", "lt") if hasattr(m, a)), "?")
    return f"--param {key}={value} is out of range; use {low} to {high}"


def build_pipeline(
    params: dict[str, Any], seed: int, numeric: list[str], categorical: list[str]
) -> Pipeline:
    """Preprocessing built from the data contract + XGBoost: categories imputed ("missing")
    and one-hot encoded; missing numbers stay missing, XGBoost learns where they go."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    require("xgboost", "training the built-in pipeline")
    from xgboost import XGBClassifier

    steps: list[tuple[str, Any, list[str]]] = []
    if categorical:
        encode = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        steps.append(("categorical", encode, categorical))
    if numeric:
        steps.append(("numeric", "passthrough", numeric))
    pre = ColumnTransformer(steps, verbose_feature_names_out=False)
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
