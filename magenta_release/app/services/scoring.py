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
) -> pd.DataFrame:
    x = conform(frame, inputs)  # our schema check replaces pyfunc's
    scores = model_files.score(model, x)
    if not np.isfinite(scores).all():
        raise BadInput("the model produced non-finite scores; check the input values")
    ids = [c for c in identifiers if c in frame.columns]
    out = frame.loc[:, ids].reset_index(drop=True)
    out[SCORE_COLUMN] = scores
    out["model_name"] = model_name
    out["model_version"] = version
    return out


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
) -> int:
    """Score batch by batch into a temp file, renamed into place at the end (no half file)."""
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
            out = score_frame(
                identifiers, model_name, model, inputs, batch.to_pandas(), version.version
            )
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
