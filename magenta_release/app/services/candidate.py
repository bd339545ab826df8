"""What a proposal is made of, for any MLflow run: the run's model and its
evaluation rows. A run from `magenta-release train` records a source, a digest and a split
rule; a run from a team's own code is accepted when it holds

- a scikit-learn-compatible model saved with skops (`mlflow.sklearn.log_model(...,
  serialization_format="skops")`), as an MLflow 3 LoggedModel or as run artifacts, under any
  name; and
- its evaluation rows logged as an input: `mlflow.log_input(mlflow.data.from_pandas(df,
  source=URI, targets=TARGET), context="evaluation")`, where URI is a table the tool reads.

Nothing the run says about itself is trusted: the rows are re-read from the source and checked
against the digest MLflow recorded (recomputed with MLflow's own dataset digest), and both
models are scored by the gates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from magenta_release.core import contract as dc
from magenta_release.core import keys
from magenta_release.core.errors import BadInput, PolicyRefused
from magenta_release.core.records import RunInfo
from magenta_release.io import datasets as dataset
from magenta_release.io import sources
from magenta_release.io.store import Runs

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

OUR_MODEL_PATH = "model"  # where `magenta-release train` logs its model


@dataclass(frozen=True)
class ModelRef:
    """Where a run's model is: the registry source and how to download it."""

    source: str  # runs:/RUN/PATH, or a LoggedModel's artifact location
    label: str
    model_id: str | None = None


def locate_model(runs: Runs, run: RunInfo) -> ModelRef:
    """The run's one model: ours at `model/`, else a LoggedModel, else an MLmodel among the
    run's artifacts. BadInput (exit 2) when there is none, or more than one to choose from."""
    if run.tags.get(keys.RUN_MODEL_MANIFEST_SHA256):
        return ModelRef(f"runs:/{run.run_id}/{OUR_MODEL_PATH}", f"run {run.run_id}")
    logged = runs.logged_models(run)
    if len(logged) == 1:
        m = logged[0]
        # Its artifact location, not models:/ID: resolving that needs a registry URI in the
        # global MLflow state, which this tool never sets.
        return ModelRef(m.artifact_location, f"model {m.name} of run {run.run_id}", m.model_id)
    if len(logged) > 1:
        names = ", ".join(m.name for m in logged)
        raise BadInput(
            f"run {run.run_id} logged {len(logged)} models ({names}); propose a run that logs "
            "exactly one model"
        )
    folders = [
        p.rsplit("/", 1)[0] for p in runs.artifact_paths(run.run_id) if p.endswith("MLmodel")
    ]
    folders = [p for p in folders if not p.endswith("MLmodel")]
    if len(folders) == 1:
        return ModelRef(f"runs:/{run.run_id}/{folders[0]}", f"run {run.run_id}")
    raise BadInput(
        f"run {run.run_id} has {'no' if not folders else len(folders)} MLflow model"
        f"{'' if len(folders) == 1 else 's'}; log exactly one with mlflow.sklearn.log_model(..., "
        'serialization_format="skops") (see docs/bring-your-own-training.md)'
    )


@dataclass(frozen=True)
class EvalRows:
    """Evaluation rows re-read from their source: the contract's columns as read, the
    labels, and where they came from."""

    frame: pd.DataFrame
    y: np.ndarray
    source: str
    kind: str  # "split" (our train) | "evaluation-input" (a team's run)


def evaluation_rows(contract: dc.DataContract, run: RunInfo) -> EvalRows | str:
    """The run's evaluation rows, checked against what the run recorded; or why they cannot
    be had, in words that say what to do (the gates fail with it)."""
    ev = dataset.Evidence.from_tags(run.tags)
    if ev is not None:
        rows = dataset.reread(ev)
        if isinstance(rows, str):
            return rows
        frame, y = rows
        return EvalRows(frame, y, ev.source, "split")
    inputs = run.evaluation_inputs
    if not inputs:
        raise PolicyRefused(
            f"run {run.run_id} logged no evaluation input; log its evaluation rows with "
            "mlflow.log_input(mlflow.data.from_pandas(df, source=URI, targets=TARGET), "
            'context="evaluation") (see docs/bring-your-own-training.md)'
        )
    if len(inputs) > 1:
        raise PolicyRefused(
            f"run {run.run_id} logged {len(inputs)} evaluation inputs; log exactly one"
        )
    return _reread_input(contract, inputs[0])


def _reread_input(contract: dc.DataContract, item: Any) -> EvalRows | str:
    uri = item.uri
    if not uri:
        return (
            f"the evaluation input {item.name!r} names no readable source ({item.source_type}); "
            "log it with source= a parquet/CSV path or duckdb:///PATH?table=NAME"
        )
    try:
        table = sources.read(sources.parse(uri, "evaluation source"))
    except BadInput as exc:
        return f"the evaluation source cannot be read ({exc}); restore it, or log a new run"
    frame = dc.to_frame(table)
    now = dataset.mlflow_digest(frame)  # MLflow's own digest, so the two agree
    if now != item.digest:
        return (
            f"the evaluation source {uri} changed since the run logged it (MLflow digest "
            f"{item.digest} recorded, {now} now); log a new run, or restore the table"
        )
    if contract.target not in frame.columns:
        raise BadInput(
            f"the evaluation rows at {uri} have no target column {contract.target!r}; set "
            "`target` under [data] in the release policy, or log the rows with the target"
        )
    cols = dc.check_columns(contract, list(frame.columns), f"evaluation source {uri}")
    dc.validate(frame, contract, cols, f"evaluation source {uri}")
    return EvalRows(frame, dc.target(frame, contract), uri, "evaluation-input")


def model_frame(
    frame: pd.DataFrame, inputs: list[tuple[str, str]], what: str, contract: dc.DataContract
) -> pd.DataFrame:
    """A model's input frame from raw rows: its signature's columns, typed as the signature
    says (our models and signed team models), else the contract's features as read."""
    from magenta_release.io.model_files import conform

    if not inputs:
        skip = {contract.target, *contract.identifiers}
        return frame.loc[
            :, [c for c in contract.feature_columns(list(frame.columns)) if c not in skip]
        ]
    missing = [n for n, _ in inputs if n not in frame.columns]
    if missing:
        raise BadInput(
            f"the {what} model needs columns the evaluation rows lack: {', '.join(missing)}; "
            "check the data contract ([data] in the release policy)"
        )
    return conform(frame, inputs)
