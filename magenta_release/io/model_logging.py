"""What `train` writes in MLflow's own formats: the fitted pipeline saved as an MLflow model
(skops, never pickle; explicit requirements; a signature from the data contract but no example
rows, since production rows are customer data) and the metadata-only dataset of its table."""

from __future__ import annotations

from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np

from magenta_release.core.contract import Columns
from magenta_release.core.pipeline import SKOPS_TRUSTED_TYPES
from magenta_release.io import datasets as dataset


def pip_requirements() -> list[str]:
    """Exact versions of what loading the model needs: skips MLflow's 2.9 s inference.
    XGBoost and MLflow are named by the distribution installed here (`xgboost-cpu` or
    `xgboost`; `mlflow`, or `mlflow-skinny` in a base install)."""
    from importlib.metadata import packages_distributions

    found = packages_distributions()
    xgboost = (found.get("xgboost") or ["xgboost"])[0]
    mlflow = "mlflow" if "mlflow" in (found.get("mlflow") or []) else "mlflow-skinny"
    names = [mlflow, "scikit-learn", xgboost, "skops", "pandas", "numpy", "scipy"]
    return [f"{n}=={pkg_version(n)}" for n in names]


def model_signature(cols: Columns) -> Any:
    """Inputs from the data contract (numbers as double, categories as string); no example
    rows, since production rows are customer data."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = [ColSpec("double", c) for c in cols.numeric]
    columns += [ColSpec("string", c) for c in cols.categorical]
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def save_model(pipeline: Any, folder: Path, cols: Columns) -> None:
    """skops, never pickle; explicit requirements; a signature but no example rows."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        pipeline,
        str(folder),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        signature=model_signature(cols),
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn="predict_proba",
    )


def dataset_entity(ev: dataset.Evidence, cols: Columns) -> Any:
    """A metadata-only MLflow dataset: source URI, digest and schema; never rows."""
    from mlflow.data.meta_dataset import MetaDataset

    from magenta_release.io.dataset_source import TableSource

    return MetaDataset(  # type: ignore[abstract]
        source=TableSource(ev.source),
        name="training-table",
        digest=ev.digest[:32],
        schema=model_signature(cols).inputs,
    )


def signature_of(inputs: list[tuple[str, str]]) -> Any:
    """A signature with these (name, "double" | "string") inputs, in this order (the order the
    model was fitted in: scikit-learn refuses columns in another order)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = [ColSpec(kind, name) for name, kind in inputs]
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def save_any_model(
    model: Any, folder: Path, inputs: list[tuple[str, str]], trusted: list[str]
) -> None:
    """A team's fitted scikit-learn-compatible model, saved as `save_model` saves ours: skops
    trusting exactly `trusted`, explicit requirements, a signature of its inputs; no example
    rows."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        model,
        str(folder),
        serialization_format="skops",
        skops_trusted_types=trusted,
        signature=signature_of(inputs),
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn="predict_proba",
    )


def rows_dataset(frame: Any, source: str, name: str, target: str | None = None) -> Any:
    """An MLflow dataset of rows that live at `source` (their path or URI and MLflow's digest
    are recorded, never the rows): what a run's evaluation and training inputs are."""
    import warnings

    from mlflow.data.pandas_dataset import from_pandas

    with warnings.catch_warnings():
        # MLflow's schema inference warns about integer columns and about a local path that
        # two of its own sources could resolve: neither applies to rows that are not a model
        warnings.simplefilter("ignore", UserWarning)
        return from_pandas(frame, source=source, targets=target, name=name)
