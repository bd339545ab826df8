"""Scoring rows with a verified model, for `predict`, the Dagster assets and `health`:
identifiers passed through, the churn score, the model's name and version; batch by batch when
the input is a file, so peak memory is one batch whatever the input size."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magenta_release.core.errors import BadInput
from magenta_release.core.records import VersionInfo
from magenta_release.io import model_files
from magenta_release.io.model_files import conform

SCORE_COLUMN = "churn_score"


def score_frame(
    identifiers: tuple[str, ...],
    model_name: str,
    model: Any,
    inputs: list[tuple[str, str]],
    frame: pd.DataFrame,
    version: int,
    *,
    column: str = SCORE_COLUMN,
    keep_index: bool = False,
) -> pd.DataFrame:
    """Identifiers, the score (in `column`), the model's name and version, one row per input
    row; with `keep_index` the frame's own index is kept (a team's frames are indexed by their
    customer id), else the rows are numbered from 0."""
    x = conform(frame, inputs)  # our schema check replaces pyfunc's
    scores = model_files.score(model, x)
    if not np.isfinite(scores).all():
        raise BadInput("the model produced non-finite scores; check the input values")
    ids = [c for c in identifiers if c in frame.columns]
    out = frame.loc[:, ids] if keep_index else frame.loc[:, ids].reset_index(drop=True)
    out = out.copy()
    out[column] = scores
    out["model_name"] = model_name
    out["model_version"] = version
    return out


# ---- categorical levels the model never saw in training --------------------------------------
def known_levels(model: Any) -> dict[str, frozenset[str]]:
    """The levels each categorical input had in training, read from the fitted encoders
    (OneHotEncoder, OrdinalEncoder, ... anything with `categories_`) inside the model's
    ColumnTransformers and Pipelines. A column with no encoder found is absent (its levels
    are unknown, so nothing is reported for it)."""
    found: dict[str, frozenset[str]] = {}
    _visit(model, None, found)
    return found


def _visit(est: Any, columns: list[str] | None, found: dict[str, frozenset[str]]) -> None:
    steps = getattr(est, "steps", None)
    if isinstance(steps, list):  # a Pipeline: each step sees the same columns until one mixes
        for _, step in steps:
            _visit(step, columns, found)
            if hasattr(step, "transformers_"):
                columns = None  # after a ColumnTransformer, the columns are no longer named
        return
    transformers = getattr(est, "transformers_", None)
    if isinstance(transformers, list):
        names = list(getattr(est, "feature_names_in_", []))
        for _, transformer, cols in transformers:
            if isinstance(transformer, str):  # "drop" / "passthrough"
                continue
            picked = [names[c] if isinstance(c, int) and c < len(names) else c for c in cols]
            _visit(transformer, [str(c) for c in picked], found)
        return
    categories = getattr(est, "categories_", None)
    if columns is not None and isinstance(categories, list) and len(categories) == len(columns):
        for name, levels in zip(columns, categories, strict=True):
            found[name] = frozenset(str(v) for v in levels if not pd.isna(v))


def unseen_levels(frame: pd.DataFrame, levels: dict[str, frozenset[str]]) -> dict[str, int]:
    """Rows per column whose value is a level the model never saw in training (missing values
    are not levels: the model's imputer handles them). Counts only, never the values' rows."""
    out: dict[str, int] = {}
    for column, known in levels.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        present = values.notna().to_numpy()
        text = values[present].astype(object).map(str)
        unseen = int((~text.isin(known)).sum())
        if unseen:
            out[column] = unseen
    return out


def add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    for column, n in more.items():
        total[column] = total.get(column, 0) + n


def input_columns(
    identifiers: tuple[str, ...], source: Any, inputs: list[tuple[str, str]]
) -> list[str]:
    """Identifiers and model inputs, checked against the source's schema before any row is
    read: missing columns, no identifier, nested values in a column."""
    import pyarrow as pa

    from magenta_release.io import sources

    schema = sources.schema(source)
    names = list(schema.names)
    missing = [n for n, _ in inputs if n not in names]
    if missing:
        raise BadInput(f"input is missing model columns: {', '.join(missing)}")
    ids = [c for c in identifiers if c in names]
    if not ids:
        raise BadInput(
            f"input has none of the identifier columns "
            f"({', '.join(identifiers)}); scores could not be matched to "
            "customers — include the identifier column"
        )
    for n, _ in inputs:
        kind = schema.field(n).type
        if pa.types.is_nested(kind):
            raise BadInput(f"input column {n} holds {kind} values; a model input must be flat")
    return [*ids, *[n for n, _ in inputs]]


def stream_batches(
    identifiers: tuple[str, ...],
    model_name: str,
    model: Any,
    inputs: list[tuple[str, str]],
    batches: Any,
    version: VersionInfo,
    path: Path,
    unseen: dict[str, int] | None = None,
) -> int:
    """Score batch by batch into a temp file, renamed into place at the end (no half file).
    `unseen`, if given, gathers the rows per column holding a level the model never saw."""
    levels = known_levels(model) if unseen is not None else {}
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    writer: Any = None
    rows = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            frame = batch.to_pandas()
            out = score_frame(identifiers, model_name, model, inputs, frame, version.version)
            if unseen is not None:
                add_counts(unseen, unseen_levels(frame, levels))
            table = pa.Table.from_pandas(out, preserve_index=False)
            if writer is None:
                is_parquet = path.suffix.lower() == ".parquet"
                writer = (pq.ParquetWriter if is_parquet else pacsv.CSVWriter)(tmp, table.schema)
            writer.write_table(table)
            rows += batch.num_rows
        if writer is None:
            raise BadInput("--input has no rows")
        writer.close()
        writer = None
        tmp.replace(path)
    except OSError as exc:
        raise BadInput(f"--output {path} cannot be written ({exc.strerror or exc})") from exc
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows
