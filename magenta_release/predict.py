"""`predict`: score a file with a verified model version and record which version scored it."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magenta_release import model_files
from magenta_release.errors import BadInput, PolicyRefused
from magenta_release.model_files import NUMERIC_KINDS, conform
from magenta_release.states import SERVABLE
from magenta_release.store import Store, VersionInfo

SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class Prediction:
    rows: int
    model_version: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "model_version": self.model_version, "output": self.output}


def resolve(store: Store, model: str) -> VersionInfo:
    """`champion` (or another alias) or a version number that passed its gates. Refuses
    (IntegrityAlert, exit 3) while the registry disagrees with the audit log: an alias moved
    outside magenta-release must never be served."""
    from magenta_release import lifecycle

    lifecycle.check(store)
    if model.isdigit():
        v = store.registry.version(model)
    else:
        alias = model.lstrip("@")
        if alias not in {"champion", "challenger", "previous"}:
            raise BadInput(
                f"--model {model!r} is neither champion/challenger/previous nor a version number"
            )
        found = store.registry.alias(alias)
        if found is None:
            raise PolicyRefused(
                f"there is no @{alias} now; see `magenta-release status` for what there is"
            )
        v = found
    # The same rule for an alias and a number: @challenger is a proposal nobody approved yet.
    if v.tags.get("release.passed_gates") != "true" or v.status not in SERVABLE:
        raise PolicyRefused(
            f"version {v.version} is {v.status or 'not proposed'}; only versions that were "
            "approved once can be served (approve it first)"
        )
    return v


def predict_frame(store: Store, frame: pd.DataFrame, model: str = "champion") -> pd.DataFrame:
    """Score an in-memory frame: identifiers passed through, churn score, model name and
    version."""
    version = resolve(store, model)
    with tempfile.TemporaryDirectory(prefix="magenta-predict-") as tmp:
        verified = model_files.fetch_verified(store, version, Path(tmp))
        return _score_frame(store, verified.model, verified.all_inputs, frame, version.version)


def _score_frame(
    store: Store, model: Any, inputs: list[tuple[str, str]], frame: pd.DataFrame, version: int
) -> pd.DataFrame:
    x = conform(frame, inputs)  # our schema check replaces pyfunc's
    scores = model_files.score(model, x)
    if not np.isfinite(scores).all():
        raise BadInput("the model produced non-finite scores; check the input values")
    ids = [c for c in store.policy.data.identifiers if c in frame.columns]
    out = frame.loc[:, ids].reset_index(drop=True)
    out["churn_score"] = scores
    out["model_name"] = store.name
    out["model_version"] = version
    return out


def predict(
    store: Store, input_uri: str | Path, output_path: Path, model: str = "champion"
) -> Prediction:
    """Score a table (a path or source URI) into `output_path` with a verified version,
    streaming record batches: peak memory is one batch, whatever the input size. The output
    has one row per input row, in input order, with the identifiers and the model version."""
    from magenta_release import sources

    source = sources.parse(str(input_uri), "--input")
    if output_path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"--output {output_path} must end in .parquet or .csv")
    local_file = source.is_local and "://" not in source.location and source.kind != "duckdb"
    if local_file and output_path.resolve() == Path(source.location).resolve():
        raise BadInput("--output must differ from --input; the input is never overwritten")
    if not output_path.parent.is_dir():
        raise BadInput(f"--output {output_path}: folder {output_path.parent} does not exist")
    version = resolve(store, model)
    with tempfile.TemporaryDirectory(prefix="magenta-predict-") as tmp:
        verified = model_files.fetch_verified(store, version, Path(tmp))
        inputs = verified.all_inputs
        columns = input_columns(store, source, inputs)
        loaded = verified.model
        text = tuple(c for c in store.policy.data.identifiers) + tuple(
            n for n, kind in inputs if kind not in NUMERIC_KINDS
        )
        rows = stream_batches(
            store, loaded, inputs, sources.batches(source, columns, text), version, output_path
        )
    return Prediction(rows, version.version, str(output_path))


def input_columns(store: Store, source: Any, inputs: list[tuple[str, str]]) -> list[str]:
    """Identifiers and model inputs, checked against the source's schema before any row is
    read: missing columns, no identifier, nested values in a column."""
    import pyarrow as pa

    from magenta_release import sources

    schema = sources.schema(source)
    names = list(schema.names)
    missing = [n for n, _ in inputs if n not in names]
    if missing:
        raise BadInput(f"input is missing model columns: {', '.join(missing)}")
    ids = [c for c in store.policy.data.identifiers if c in names]
    if not ids:
        raise BadInput(
            f"input has none of the identifier columns "
            f"({', '.join(store.policy.data.identifiers)}); scores could not be matched to "
            "customers — include the identifier column"
        )
    for n, _ in inputs:
        kind = schema.field(n).type
        if pa.types.is_nested(kind):
            raise BadInput(f"input column {n} holds {kind} values; a model input must be flat")
    return [*ids, *[n for n, _ in inputs]]


def stream_batches(
    store: Store,
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
            out = _score_frame(store, model, inputs, batch.to_pandas(), version.version)
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
