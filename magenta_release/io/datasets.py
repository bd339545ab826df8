"""Reading a model's table through its data contract, and the evaluation evidence a run
records so that the gates can re-read exactly the same rows later (docs/bring-your-own-training.md).

Evidence is a source URI, a content digest of the rows read, the row count and schema, and a
deterministic split rule (a hash of the key column). Nothing here stores a row or an identifier
value anywhere: the digests are one-way, the schema is names and types."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magenta_release.core import contract as dc
from magenta_release.core.errors import BadInput
from magenta_release.io import sources

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def generator_uri(seed: int, rows: int) -> str:
    from magenta_release.core.synthetic import GENERATOR, GENERATOR_VERSION, DatasetRef, check_size

    check_size(rows)
    if seed < 0:
        raise BadInput(f"--seed {seed} is negative; use a seed >= 0")
    return DatasetRef(GENERATOR, GENERATOR_VERSION, seed, rows).uri


def canonical(uri: str, flag: str = "--data") -> sources.Source:
    """Parse a source and make local paths absolute, so the URI recorded on a run still
    names the same table when propose runs from another folder. `flag` names the source in
    messages (`--data` for train; the gates re-read it as `source`)."""
    source = sources.parse(uri, flag)
    if source.kind == "duckdb":
        path = Path(source.location).expanduser().resolve()
        return sources.Source(
            f"duckdb://{path}?table={source.table}", "duckdb", str(path), source.table, flag=flag
        )
    if source.kind in {"parquet", "csv"} and "://" not in source.uri:
        path = Path(source.location).expanduser().resolve()
        return sources.Source(str(path), source.kind, str(path), flag=flag)
    return source


@dataclass(frozen=True)
class Table:
    """A table read under a contract: only the contract's columns, validated."""

    source: sources.Source
    frame: pd.DataFrame
    columns: dc.Columns
    digest: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def load(uri: str, contract: dc.DataContract, where: str = "--data") -> Table:
    """Read and validate a table; BadInput (exit 2) on anything the contract refuses."""
    source = canonical(uri, where)
    label = source.label
    found = sources.schema(source)
    available = list(found.names)
    kinds = dc.arrow_kinds(found)
    cols = dc.check_columns(contract, available, label, kinds)
    wanted = contract.columns(available, kinds=kinds)
    _check_flat(found, wanted, label)
    table = sources.read(
        source,
        wanted,
        text_columns=(*contract.present_identifiers(available), *cols.categorical),
    )
    frame = dc.to_frame(table)
    dc.validate(frame, contract, cols, label)
    return Table(source, frame, cols, dc.digest(frame))


def _check_flat(schema: Any, columns: list[str], label: str) -> None:
    """Lists, maps and structs are no model input and no identifier; say so before reading."""
    import pyarrow as pa

    nested = [
        f"{c} ({schema.field(c).type})" for c in columns if pa.types.is_nested(schema.field(c).type)
    ]
    if nested:
        raise BadInput(
            f"{label}: columns {', '.join(nested)} hold nested values; give one value per "
            "cell (flatten them in the export)"
        )


@dataclass(frozen=True)
class Split:
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_eval: pd.DataFrame
    y_eval: np.ndarray
    eval_digest: str
    eval_frame: pd.DataFrame  # the evaluation rows as read (contract columns), for re-scoring


def split(table: Table, contract: dc.DataContract) -> Split:
    """Training and evaluation rows by the hash of the key; refuses a split with no churner
    (or no non-churner) on either side."""
    import numpy as np

    # A canonical row order (by content hash), so a re-read in another order (DuckDB scans in
    # parallel) gives the same rows in the same order and exactly the same metrics.
    frame = table.frame.iloc[np.argsort(dc.row_hashes(table.frame), kind="stable")]
    mask = dc.evaluation_mask(frame, contract)
    train_rows, eval_rows = frame[~mask], frame[mask]
    for name, part in (("training", train_rows), ("evaluation", eval_rows)):
        labels = {int(v) for v in part[contract.target].astype(int).unique()}
        if labels != {0, 1}:
            raise BadInput(
                f"{table.source.label}: the {name} rows hold only target value(s) "
                f"{sorted(labels)}; both classes are needed (more rows, or check the target)"
            )
    return Split(
        dc.prepare(train_rows, table.columns).reset_index(drop=True),
        dc.target(train_rows, contract),
        dc.prepare(eval_rows, table.columns).reset_index(drop=True),
        dc.target(eval_rows, contract),
        dc.digest(eval_rows),
        eval_rows.reset_index(drop=True),
    )


@dataclass(frozen=True)
class Evidence:
    """What a run records about its data: enough to re-read and check the evaluation rows."""

    source: str
    digest: str
    rows: int
    eval_digest: str
    eval_rows: int
    split: dict[str, Any]
    contract: dict[str, Any]

    TAG = "magenta.data"

    def to_tags(self) -> dict[str, str]:
        return {
            self.TAG: json.dumps(asdict(self), sort_keys=True),
            "magenta.dataset_sha256": self.digest,  # what `runs` and `compare` show
            "magenta.data_source": self.source,
            "magenta.eval_sha256": self.eval_digest,
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Evidence | None:
        try:
            return cls(**json.loads(tags[cls.TAG]))
        except (KeyError, TypeError, ValueError):
            return None


def evidence(table: Table, parts: Split, contract: dc.DataContract) -> Evidence:
    return Evidence(
        source=table.source.uri,
        digest=table.digest,
        rows=table.rows,
        eval_digest=parts.eval_digest,
        eval_rows=len(parts.y_eval),
        split=contract.split_rule(),
        contract=contract.model_dump(mode="json"),
    )


def reread(ev: Evidence) -> tuple[pd.DataFrame, np.ndarray] | str:
    """The run's evaluation rows, re-read from its source and checked against its digests;
    or why not, in words that say what to do."""
    contract = dc.DataContract.model_validate(ev.contract)
    try:
        table = load(ev.source, contract, "source")
    except BadInput as exc:
        gone = "does not exist" in str(exc)
        what = "is gone" if gone else "cannot be read as it was at training"
        return f"the training source {what} ({exc}); restore it, or retrain on the current data"
    if table.digest != ev.digest:
        return (
            f"the training source {ev.source} changed since training (content digest "
            f"{ev.digest[:12]} recorded, {table.digest[:12]} now); retrain on the current data, "
            "or restore the table as it was"
        )
    parts = split(table, contract)
    if parts.eval_digest != ev.eval_digest:
        return "the evaluation rows differ from those recorded (split rule changed); retrain"
    return parts.eval_frame, parts.y_eval


def mlflow_digest(frame: pd.DataFrame) -> str:
    """MLflow's own digest of a frame (what `mlflow.data.from_pandas` records for a run's
    input), so a re-read table can be compared with what the run logged."""
    from mlflow.data.pandas_dataset import from_pandas

    return str(from_pandas(frame).digest)


# ---- training inputs: which customers a model was trained on --------------------------------
# Kept apart from `load`/`reread` (which read whole tables for the digests): the disjointness
# check reads one column, and only when a split rule cannot settle it alone.
def key_hashes_of(uri: str, key: str) -> np.ndarray | str:
    """The hashed keys of every row of a source (one column read); or why it cannot be
    read. The hashes live in memory only."""
    try:
        source = canonical(uri, "source")
        table = sources.read(source, [key], text_columns=(key,))
    except BadInput as exc:
        return f"{uri} cannot be re-read ({exc})"
    return dc.key_hashes(dc.to_frame(table), key)


def input_key_hashes(uri: str, recorded_digest: str, key: str) -> np.ndarray | str:
    """The hashed keys of a logged input (a team run's training rows), after checking the
    source still holds what MLflow recorded; or why not."""
    try:
        source = canonical(uri, "source")
        table = sources.read(source)
    except BadInput as exc:
        return f"{uri} cannot be re-read ({exc})"
    frame = dc.to_frame(table)
    if mlflow_digest(frame) != recorded_digest:
        return f"{uri} changed since the run logged it (MLflow digest {recorded_digest})"
    if key not in frame.columns:
        return f"{uri} has no key column {key!r}"
    return dc.key_hashes(frame, key)


def write_rows(frame: pd.DataFrame, uri: str) -> pd.DataFrame:
    """Write rows as a parquet file (a path or any fsspec URL) and read them back the way the
    gates will (`sources.read`): the rows as stored, which is what a digest must be taken of.
    An existing file is never overwritten (a run's rows are its evidence)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    try:
        if "://" in uri:
            import fsspec.core

            fs, path = fsspec.core.url_to_fs(uri)
            if fs.exists(path):
                raise FileExistsError(path)
            with fs.open(path, "wb") as fh:
                pq.write_table(table, fh)
        else:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            with open(uri, "xb") as fh:
                pq.write_table(table, fh)
    except FileExistsError as exc:
        raise BadInput(f"{uri} exists already; a run's rows are never overwritten") from exc
    except (OSError, ValueError, ImportError) as exc:
        raise BadInput(f"cannot write rows to {uri} ({exc}); check the folder") from exc
    return dc.to_frame(sources.read(sources.parse(uri, "rows")))
