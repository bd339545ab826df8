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
from magenta_release.core.fairness import Trained
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
    kind: str  # "split" (our train) | "evaluation-input" (a team's run) | "out-of-time"
    digest: str = ""  # what identifies exactly these rows (the digest they were checked with)

    def subset(self, keep: np.ndarray) -> EvalRows:
        """Only the rows `keep` marks (the rows no model was trained on)."""
        return EvalRows(
            self.frame[keep].reset_index(drop=True), self.y[keep], self.source, self.kind, ""
        )


def evaluation_rows(
    contract: dc.DataContract, run: RunInfo, protocols: tuple[str, ...]
) -> EvalRows | str:
    """The run's evaluation rows, checked against what the run recorded; or why they cannot
    be had, in words that say what to do (the gates fail with it). A source over a protocol
    outside `protocols` (the policy's `allowed_source_protocols`) is refused, exit 3, before
    it is opened: the run names its source, and whoever proposes or approves re-reads it."""
    ev = dataset.Evidence.from_tags(run.tags)
    if ev is not None:
        sources.require_protocol(ev.source, protocols, f"the training source of run {run.run_id}")
        rows = dataset.reread(ev)
        if isinstance(rows, str):
            return rows
        frame, y = rows
        return EvalRows(frame, y, ev.source, "split", ev.eval_digest)
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
    return _reread_input(contract, inputs[0], protocols)


def _reread_input(
    contract: dc.DataContract, item: Any, protocols: tuple[str, ...]
) -> EvalRows | str:
    uri = item.uri
    if not uri:
        return (
            f"the evaluation input {item.name!r} names no readable source ({item.source_type}); "
            "log it with source= a parquet/CSV path or duckdb:///PATH?table=NAME"
        )
    sources.require_protocol(uri, protocols, "evaluation source")
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
    cols = dc.check_columns(
        contract, list(frame.columns), f"evaluation source {uri}", dc.frame_kinds(frame)
    )
    dc.validate(frame, contract, cols, f"evaluation source {uri}")
    return EvalRows(frame, dc.target(frame, contract), uri, "evaluation-input", f"{uri}#{now}")


def model_frame(
    frame: pd.DataFrame, inputs: list[tuple[str, str]], what: str, contract: dc.DataContract
) -> pd.DataFrame:
    """A model's input frame from raw rows: its signature's columns, typed as the signature
    says (our models and signed team models), else the contract's features as read."""
    from magenta_release.io.model_files import conform

    if not inputs:
        features = contract.feature_columns(list(frame.columns), dc.frame_kinds(frame))
        return frame.loc[:, features]
    missing = [n for n, _ in inputs if n not in frame.columns]
    if missing:
        raise BadInput(
            f"the {what} model needs columns the evaluation rows lack: {', '.join(missing)}; "
            "check the data contract ([data] in the release policy)"
        )
    return conform(frame, inputs)


def evaluation_table_rows(contract: dc.DataContract, protocols: tuple[str, ...]) -> EvalRows | str:
    """The policy's out-of-time evaluation table (`[data] evaluation_table`), read through the
    contract, in a canonical row order; or why it cannot be read."""
    import numpy as np

    uri = contract.evaluation_table
    if uri is None:
        raise ValueError("the policy names no evaluation table")
    sources.require_protocol(uri, protocols, "[data] evaluation_table")
    try:
        table = dataset.load(uri, contract, "[data] evaluation_table")
    except BadInput as exc:
        return f"the policy's evaluation table cannot be read ({exc}); restore it or fix the policy"
    frame = table.frame.iloc[np.argsort(dc.row_hashes(table.frame), kind="stable")]
    frame = frame.reset_index(drop=True)
    return EvalRows(
        frame, dc.target(frame, contract), table.source.uri, "out-of-time", table.digest
    )


def training_overlap(
    rows: EvalRows, contract: dc.DataContract, run: RunInfo, label: str, protocols: tuple[str, ...]
) -> Trained:
    """Which of `rows` were training rows of the model of `run`, from what the run recorded:

    - a run of `train` recorded its table and split rule: rows on the training side of that
      rule are candidates, confirmed against the keys its table holds (one column re-read);
      when the rule alone rules every row out, nothing is read;
    - a run logged with a training input (context "training", e.g. by
      `magenta_release.sdk.log_governed_run`): its keys, re-read and checked against MLflow's
      digest;
    - otherwise unknown, and said so.

    Keys are compared as 64-bit hashes in memory; nothing here is stored. A table over a
    protocol outside `protocols` is refused (exit 3) before it is opened."""
    import numpy as np

    ev = dataset.Evidence.from_tags(run.tags)
    if ev is not None:
        rule = dc.DataContract.model_validate(ev.contract)
        if rule.key not in rows.frame.columns:
            return Trained(label, None, problem=f"the evaluation rows lack its key {rule.key}")
        candidates = ~dc.evaluation_mask(rows.frame, rule)
        if rows.kind == "split" and rows.source == ev.source and rows.digest == ev.eval_digest:
            candidates[:] = False  # its own evaluation rows: the evaluation side of its rule
        if not candidates.any():
            return Trained(label, candidates, "by its split rule")
        sources.require_protocol(ev.source, protocols, f"the training source of {label}")
        found = dataset.key_hashes_of(ev.source, rule.key)
        if isinstance(found, str):
            return Trained(
                label,
                candidates,
                f"by its split rule ({found}: every key on its training side counted)",
            )
        seen = candidates & np.isin(dc.key_hashes(rows.frame, rule.key), found)
        return Trained(label, seen, f"re-read from {ev.source}")
    inputs = [i for i in run.inputs if i.context == TRAINING_CONTEXT]
    if not inputs:
        return Trained(label, None, problem=f"run {run.run_id[:12]} recorded no training input")
    item = inputs[0]
    key = contract.key
    if key not in rows.frame.columns:
        return Trained(label, None, problem=f"the evaluation rows lack the key {key}")
    if not item.uri:
        return Trained(label, None, problem="its training input names no readable source")
    sources.require_protocol(item.uri, protocols, f"the training input of {label}")
    found = dataset.input_key_hashes(item.uri, item.digest, key)
    if isinstance(found, str):
        return Trained(label, None, problem=found)
    return Trained(
        label, np.isin(dc.key_hashes(rows.frame, key), found), f"re-read from {item.uri}"
    )


TRAINING_CONTEXT = "training"  # the input context of a run's training rows
