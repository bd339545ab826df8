"""An optional helper for teams that train with their own code and plain MLflow
(docs/bring-your-own-training.md). Nothing here is needed: each function is a few lines of
public MLflow API that a team may copy instead. What the release gates check is the run, not
how it was logged.

- `tracking(uri)`: point MLflow's fluent API (`mlflow.start_run`, `mlflow.sklearn.log_model`)
  at one store for a block, and put back whatever was set before, so a Dagster process that
  logs to the team's store does not leak that URI into other assets.
- `skops_trusted_types(model)`: the types skops must be told to trust for this model, found by
  serialising it (the list `mlflow.sklearn.log_model(..., skops_trusted_types=...)` needs).
- `log_skops_model(model, name)`: log a scikit-learn model as skops, never pickle.
- `log_evaluation_rows(frame, source, target)`: record the evaluation rows as an input with
  context "evaluation": where they are (`source`) and MLflow's digest of them, never the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

EVALUATION_CONTEXT = "evaluation"  # the input context the release gates look for


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Use `uri` as MLflow's tracking URI inside the block; restore the previous one after.

    MLflow keeps the URI in process-wide state (and copies it into MLFLOW_TRACKING_URI for
    subprocesses); `mlflow.start_run` has no per-call URI. Setting it only for the block is the
    closest the fluent API gets to an explicit client."""
    import mlflow

    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None  # type: ignore[no-untyped-call]
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        # None clears both the global and the environment variable it set.
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]


def skops_trusted_types(model: Any) -> list[str]:
    """The types skops does not trust by default that `model` contains, e.g.
    `xgboost.sklearn.XGBClassifier`. You name them for your own model at logging time; the
    release tool never loads a pickle whatever the list says."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def pinned_requirements() -> list[str]:
    """`name==version` of the libraries scoring a skops scikit-learn model needs, as installed
    here: the run records its library versions, so the release gates can score the model in
    an environment with exactly these when theirs differ (io/environments.py). Explicit, so
    MLflow skips its ~3 s requirement-inference subprocess."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("scikit-learn", "xgboost", "xgboost-cpu", "skops", "pandas", "numpy", "scipy"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def log_skops_model(model: Any, name: str = "model", **kwargs: Any) -> Any:
    """`mlflow.sklearn.log_model` with skops serialisation and the types it needs, and
    `pinned_requirements()` unless `pip_requirements` is given; other keyword arguments
    (signature, ...) pass through. Needs an active run."""
    import mlflow.sklearn

    kwargs.setdefault("pip_requirements", pinned_requirements())
    return mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format="skops",
        skops_trusted_types=skops_trusted_types(model),
        **kwargs,
    )


def log_evaluation_rows(
    frame: pd.DataFrame, source: str, target: str | None, name: str | None = None
) -> None:
    """Record `frame` as the run's evaluation rows: `source` must be where the release tool
    can read exactly these rows again (a parquet or CSV path, any fsspec URL, or
    `duckdb:///PATH?table=NAME`); MLflow stores the source and a digest, not the rows. Needs
    an active run.

    `name`: MLflow keeps one dataset per (experiment, name, digest) and reuses its source, so
    a second run logging the same rows under the same name records the first run's path; a
    name per run (e.g. `evaluation-<run id>`) records this run's own file."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    dataset = from_pandas(frame, source=source, targets=target, name=name)
    mlflow.log_input(dataset, context=EVALUATION_CONTEXT)
