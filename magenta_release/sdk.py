"""The supported integration for a team's own training code (docs/bring-your-own-training.md):
split with the policy's rule, then log a run the release gates accept, in one call.

```python
from magenta_release import sdk

store = sdk.open_store(tracking_uri="sqlite:////data/mlruns/mlflow.db")
training, evaluation = sdk.split(df_input, store)      # the policy's evaluation rule
model.fit(training[features], training[target])
run = sdk.log_governed_run(
    model, training, evaluation, store=store,
    evaluation_dir="gs://team-bucket/evaluation/",       # where the rows stay (not MLflow)
)
# then: magenta-release propose <run.run_id>
```

`log_governed_run` checks what the gates would refuse before anything is written (rows on
the wrong side of the split, identifiers among the inputs, a model skops cannot save or the
tool will not load, rows that break the data contract), then writes the evaluation rows and
the training rows' keys to one file each under `evaluation_dir` (never overwritten; they hold
customer identifiers, so they stay in the team's storage), and logs one MLflow run: the model
(skops, a signature from the contract, exact requirements), the metrics the gates compute
under their own names, the team's own metrics as given, both inputs (their paths and MLflow's
digests, never rows) and the training-time summary champion health compares against."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from magenta_release.app.context import Context
from magenta_release.app.services.candidate import TRAINING_CONTEXT
from magenta_release.core import contract as dc
from magenta_release.core import integrity, keys
from magenta_release.core import metrics as scoring
from magenta_release.core.drift import SUMMARY_PATH, training_summary
from magenta_release.core.errors import BadInput
from magenta_release.core.settings import Settings, disable_telemetry

if TYPE_CHECKING:
    import pandas as pd

    from magenta_release.core.policy import Policy

__all__ = ["GovernedRun", "log_governed_run", "open_store", "split"]

GOVERNED_BY = "magenta.governed_by"  # run tag: which integration logged the run
EVALUATION_CONTEXT = "evaluation"


@dataclass(frozen=True)
class GovernedRun:
    """What `log_governed_run` logged."""

    run_id: str
    metrics: dict[str, float]  # under the gates' names, computed on the evaluation rows
    evaluation_source: str
    training_source: str
    rows: dict[str, int]  # {"training": n, "evaluation": n}
    notices: tuple[str, ...] = ()  # what was left out of the features, and why

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def open_store(
    *,
    tracking_uri: str | None = None,
    home: str | Path | None = None,
    model: str | None = None,
    by: str | None = None,
) -> Context:
    """The release store as the CLI would open it (arguments override MAGENTA_RELEASE_* and
    MLFLOW_TRACKING_URI). The store must exist: `magenta-release init`, once."""
    disable_telemetry()
    settings = Settings().with_overrides(
        tracking_uri=tracking_uri, home=Path(home) if home is not None else None
    )
    return Context.open(settings, model, by)


def _context(store: Context | Opens | None) -> Context:
    if store is None:
        return open_store()
    return store if isinstance(store, Context) else store.open()


def _folder(where: str) -> str:
    """A local folder made absolute (MLflow records it as the rows' source), a URL as is."""
    if "://" in where:
        return where.rstrip("/")
    return str(Path(where).expanduser().resolve())


def split(
    frame: pd.DataFrame, store: Context | Opens | None = None, *, policy: Policy | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, evaluation rows) of `frame` by the policy's rule: a hash of the first
    identifier (salted by `[data] split_salt`) puts `evaluation_fraction` of the customers on
    the evaluation side, the same side for every run and every model, `train` included. The
    identifier may be a column or the index; the rows keep their index."""
    contract = _contract(store, policy)
    mask = dc.evaluation_mask(_with_identifiers(frame, contract, "the frame"), contract)
    return frame[~mask], frame[mask]


def _contract(store: Context | Opens | None, policy: Policy | None) -> dc.DataContract:
    if policy is not None:
        return policy.data
    return _context(store).policy.data


def _with_identifiers(frame: pd.DataFrame, contract: dc.DataContract, what: str) -> pd.DataFrame:
    """The frame with identifiers that sit in its index (the team moves rating_account_id
    into the index) as columns; BadInput when the key is in neither."""
    named = [n for n in frame.index.names if n is not None]
    if any(n in contract.all_identifiers for n in named):
        frame = frame.reset_index(level=[n for n in named if n not in frame.columns])
    if contract.key not in frame.columns:
        raise BadInput(
            f"{what} has no column {contract.key!r} (the key of [data] identifiers, in the "
            "columns or the index); the policy's split and the gates need it"
        )
    return frame


class Opens(Protocol):
    """Anything that opens the release store: the Dagster `ReleaseStore` resource."""

    def open(self) -> Context: ...


def log_governed_run(
    model: Any,
    training: pd.DataFrame,
    evaluation: pd.DataFrame,
    *,
    store: Context | Opens | None = None,
    evaluation_dir: str | Path | None = None,
    run_name: str | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> GovernedRun:
    """Log a fitted model as one run the release gates accept (see the module docstring).
    `training`/`evaluation`: the rows it was fitted and evaluated on, identifiers and target
    included (from `split`); `store`: a context from `open_store`, or a resource that opens
    one; `evaluation_dir`: where the rows' files go (default: the store resource's
    `evaluation_dir`); `metrics`: the team's own, logged as given and checked by the gates
    under `[gates.metric_names]`. BadInput (nothing written) for anything the gates would
    refuse."""
    ctx = _context(store)
    folder = (
        evaluation_dir if evaluation_dir is not None else getattr(store, "evaluation_dir", None)
    )
    if not folder:
        raise BadInput(
            "log_governed_run needs evaluation_dir= (or a store resource with evaluation_dir): "
            "the folder or URL in the team's storage where the evaluation rows are kept"
        )
    ctx.check_residency()
    policy = ctx.policy
    contract = policy.data
    train_rows = _with_identifiers(training, contract, "training")
    eval_rows = _with_identifiers(evaluation, contract, "evaluation")
    _check_split(contract, train_rows, eval_rows)
    features = _features(model, contract, eval_rows)
    cols = _columns(contract, eval_rows, features)
    kinds = dc.frame_kinds(eval_rows)
    wanted = list(
        dict.fromkeys([*contract.columns(list(eval_rows.columns), kinds=kinds), *cols.features])
    )
    dc.validate(eval_rows.loc[:, wanted], contract, cols, "evaluation rows")
    trusted = _trusted_types(model)

    runs = ctx.runs
    folder = _folder(str(folder))
    tags = {
        "mlflow.user": ctx.actor,
        GOVERNED_BY: "magenta_release.sdk.log_governed_run",
        keys.RUN_HOST: socket.gethostname(),
        keys.RUN_PID: str(os.getpid()),
    }
    run_id = runs.create_run(run_name or "governed-run", tags)
    status = "FAILED"
    try:
        result = _log(ctx, run_id, model, cols, wanted, train_rows, eval_rows, folder, trusted)
        if params or metrics:
            theirs = {k: float(v) for k, v in (metrics or {}).items()}
            runs.log_run_data(run_id, dict(params or {}), theirs, {})
        status = "FINISHED"
    finally:
        runs.end_run(run_id, status)
    return result


def _check_split(contract: dc.DataContract, train: pd.DataFrame, ev: pd.DataFrame) -> None:
    """The rows are on the sides of the policy's split (unless the policy evaluates on an
    out-of-time table); and no customer is on both."""
    import numpy as np

    if contract.evaluation_table is None:
        wrong_eval = int((~dc.evaluation_mask(ev, contract)).sum())
        wrong_train = int(dc.evaluation_mask(train, contract).sum())
        if wrong_eval or wrong_train:
            raise BadInput(
                f"{wrong_eval:,} evaluation rows and {wrong_train:,} training rows are on the "
                "other side of the policy's split (a hash of "
                f"{contract.key}, evaluation_fraction {contract.evaluation_fraction}); split "
                "with magenta_release.sdk.split(frame, store), so every model is judged on rows "
                "it was not trained on"
            )
    both = np.isin(dc.key_hashes(ev, contract.key), dc.key_hashes(train, contract.key))
    if both.any():
        raise BadInput(
            f"{int(both.sum()):,} evaluation rows have a {contract.key} that is also among the "
            "training rows; evaluate on rows the model was not trained on"
        )


def _features(model: Any, contract: dc.DataContract, ev: pd.DataFrame) -> list[str]:
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        return contract.feature_columns(list(ev.columns), dc.frame_kinds(ev))
    names = [str(n) for n in fitted]
    ids = sorted(set(names) & set(contract.all_identifiers))
    if ids:
        raise BadInput(
            f"the model was fitted on identifier columns {', '.join(ids)}; identifiers are never "
            "model inputs (drop them before fitting)"
        )
    missing = [n for n in names if n not in ev.columns]
    if missing:
        raise BadInput(f"the evaluation rows lack the model's inputs {', '.join(missing)}")
    return names


def _columns(contract: dc.DataContract, ev: pd.DataFrame, features: list[str]) -> _Ordered:
    """The model's inputs as the contract types them: categorical when the contract says so
    or the rows hold text, else numeric."""
    import pandas as pd

    if contract.target not in ev.columns:
        raise BadInput(f"the evaluation rows have no target column {contract.target!r}")
    found = dc.check_columns(contract, list(ev.columns), "evaluation rows", dc.frame_kinds(ev))
    text = [
        c
        for c in features
        if contract.is_categorical(c)
        or not (pd.api.types.is_numeric_dtype(ev[c]) or pd.api.types.is_bool_dtype(ev[c]))
    ]
    numeric = [c for c in features if c not in text]
    return _Ordered(numeric, text, found.notices, tuple(features))


@dataclass(frozen=True)
class _Ordered(dc.Columns):
    """Columns that also remember the order the model was fitted in."""

    features_in_order: tuple[str, ...] = ()


def _trusted_types(model: Any) -> list[str]:
    """The types skops must trust to save the model, if the release tool will load them."""
    from magenta_release.core.pipeline import SKOPS_TRUSTED_TYPES
    from magenta_release.io.fluent import skops_trusted_types

    try:
        needed = skops_trusted_types(model)
    except Exception as exc:  # skops raises whatever its serialiser hits
        raise BadInput(f"skops cannot save the model ({exc}); use a scikit-learn model") from exc
    refused = sorted(set(needed) - set(SKOPS_TRUSTED_TYPES))
    if refused:
        raise BadInput(
            f"the model holds types the release tool will not load ({', '.join(refused)}); it "
            f"loads only scikit-learn types and {', '.join(SKOPS_TRUSTED_TYPES)}"
        )
    return needed


def _log(
    ctx: Context,
    run_id: str,
    model: Any,
    cols: _Ordered,
    wanted: list[str],
    train: pd.DataFrame,
    ev: pd.DataFrame,
    folder: str,
    trusted: list[str],
) -> GovernedRun:
    from magenta_release.io import datasets, model_files
    from magenta_release.io.model_logging import rows_dataset, save_any_model

    contract = ctx.policy.data
    runs = ctx.runs
    eval_uri = f"{folder}/{run_id}.parquet"
    keys_uri = f"{folder}/{run_id}.training-keys.parquet"
    stored = datasets.write_rows(ev.loc[:, wanted], eval_uri)
    stored_keys = datasets.write_rows(train.loc[:, [contract.key]], keys_uri)
    text = set(cols.categorical)
    inputs = [(c, "string" if c in text else "double") for c in cols.features_in_order]
    y_eval = dc.target(stored, contract)
    scores = model_files.score(model, model_files.conform(stored, inputs))
    x_train = model_files.conform(train, inputs)
    train_scores = model_files.score(model, x_train)
    threshold = scoring.choose_threshold(dc.target(train, contract), train_scores)
    found = scoring.metrics(y_eval, scores, threshold)
    summary = training_summary(x_train, train_scores, cols.categorical, ctx.policy.health.bins)
    with tempfile.TemporaryDirectory(prefix="magenta-sdk-") as tmp:
        model_dir = Path(tmp) / "model"
        save_any_model(model, model_dir, inputs, trusted)
        files = integrity.manifest(model_dir)
        evaluation = Path(tmp) / "evaluation"
        evaluation.mkdir()
        (evaluation / Path(SUMMARY_PATH).name).write_text(json.dumps(summary))
        (evaluation / "curves.json").write_text(json.dumps(scoring.curves(y_eval, scores)))
        runs.log_run_data(
            run_id,
            {"evaluation_fraction": contract.evaluation_fraction},
            found,
            {
                keys.RUN_MODEL_MANIFEST_SHA256: integrity.manifest_digest(files),
                keys.RUN_MODEL_FORMAT: "skops",
                keys.RUN_DATASET_SHA256: dc.digest(stored),
            },
        )
        runs.log_artifacts(run_id, model_dir, "model")
        runs.log_artifacts(run_id, evaluation, "evaluation")
    target = contract.target
    runs.log_dataset(
        run_id, rows_dataset(stored, eval_uri, f"evaluation-{run_id}", target), EVALUATION_CONTEXT
    )
    runs.log_dataset(
        run_id, rows_dataset(stored_keys, keys_uri, f"training-{run_id}"), TRAINING_CONTEXT
    )
    return GovernedRun(
        run_id,
        found,
        eval_uri,
        keys_uri,
        {"training": len(train), "evaluation": len(stored)},
        cols.notices,
    )
