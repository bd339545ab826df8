"""Reading a model's table through its data contract, and the evaluation evidence a run
records so that the gates can re-read exactly the same rows later (docs/bring-your-own-training.md).

Evidence is a source URI, a content digest of the rows read, the row count and schema, and a
deterministic split rule (a hash of the key column). Nothing here stores a row or an identifier
value anywhere: the digests are one-way, the schema is names and types."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
    return sources.canonical(sources.parse(uri, flag))


@dataclass(frozen=True)
class Table:
    """A table read under a contract: only the contract's columns, validated."""

    source: sources.Source
    frame: pd.DataFrame
    columns: dc.Columns
    digest: str
    # the per-row hashes behind `digest`: the split digests its evaluation rows from them
    # instead of hashing those rows a second time
    row_digest: dc.RowDigest | None = field(default=None, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class _Plan:
    """What to read from a source under a contract (resolved from its schema, no rows)."""

    source: sources.Source
    columns: dc.Columns
    wanted: list[str]
    text: tuple[str, ...]
    schema: Any


def _plan(source: sources.Source, contract: dc.DataContract) -> _Plan:
    found = sources.schema(source)
    available = list(found.names)
    kinds = dc.arrow_kinds(found)
    cols = dc.check_columns(contract, available, source.label, kinds)
    wanted = contract.columns(available, kinds=kinds)
    _check_flat(found, wanted, source.label)
    text = (*contract.present_identifiers(available), *cols.categorical)
    return _Plan(source, cols, wanted, text, found)


def load(uri: str, contract: dc.DataContract, where: str = "--data") -> Table:
    """Read and validate a table; BadInput (exit 2) on anything the contract refuses."""
    plan = _plan(canonical(uri, where), contract)
    frame = dc.to_frame(
        sources.read(plan.source, plan.wanted, text_columns=plan.text), release=True
    )
    dc.validate(frame, contract, plan.columns, plan.source.label)
    rows = dc.RowDigest.of(frame)
    return Table(plan.source, frame, plan.columns, rows.digest(), rows)


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

    frame = table.frame
    rows = table.row_digest or dc.RowDigest.of(frame)
    # A canonical row order (by content hash), so a re-read in another order (DuckDB scans in
    # parallel) gives the same rows in the same order and exactly the same metrics.
    order = np.argsort(dc.row_hashes(frame, rows.text), kind="stable")
    in_eval = dc.evaluation_mask(frame, contract)[order]
    train_at, eval_at = order[~in_eval], order[in_eval]
    y = dc.target(frame, contract)
    for name, at in (("training", train_at), ("evaluation", eval_at)):
        labels = {int(v) for v in np.unique(y[at])}
        if labels != {0, 1}:
            raise BadInput(
                f"{table.source.label}: the {name} rows hold only target value(s) "
                f"{sorted(labels)}; both classes are needed (more rows, or check the target)"
            )
    # one copy of each side, taken in the canonical order (never a sorted copy of the whole)
    eval_rows = frame.take(eval_at).reset_index(drop=True)
    return Split(
        dc.prepare(frame.take(train_at), table.columns).reset_index(drop=True),
        y[train_at],
        dc.prepare(eval_rows, table.columns),
        y[eval_at],
        rows.digest(eval_at),
        eval_rows,
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
    or why not, in words that say what to do. A parquet or DuckDB source is streamed: every
    row is hashed for the table's digest, and only the evaluation rows are kept (memory for
    those rows and one batch, not for the table)."""
    contract = dc.DataContract.model_validate(ev.contract)
    try:
        source = canonical(ev.source, "source")
        scanned = _scan(source, contract)
        if scanned is None:  # a source whose batches may convert unlike the whole table
            table = load(ev.source, contract, "source")
            digest = table.digest
        else:
            digest = scanned.digest
    except BadInput as exc:
        gone = "does not exist" in str(exc)
        what = "is gone" if gone else "cannot be read as it was at training"
        return f"the training source {what} ({exc}); restore it, or retrain on the current data"
    if digest != ev.digest:
        return (
            f"the training source {ev.source} changed since training (content digest "
            f"{ev.digest[:12]} recorded, {digest[:12]} now); retrain on the current data, "
            "or restore the table as it was"
        )
    if scanned is None:
        parts = split(table, contract)
        frame, y, eval_digest = parts.eval_frame, parts.y_eval, parts.eval_digest
    else:
        frame, y, eval_digest = scanned.frame, scanned.y, scanned.eval_digest
    if eval_digest != ev.eval_digest:
        return "the evaluation rows differ from those recorded (split rule changed); retrain"
    return frame, y


@dataclass(frozen=True)
class _Scanned:
    digest: str  # of every row, as `load` computes it
    eval_digest: str
    frame: pd.DataFrame  # the evaluation rows as `split` orders them
    y: np.ndarray


# Arrow types that convert to the same pandas values batch by batch as in one table. An
# integer column with a missing value anywhere becomes float64 in the table: handled below.
# Anything else (dates, decimals, dictionaries, ...) is read as a whole.
def _streams_exactly(kind: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    )


def _scan(source: sources.Source, contract: dc.DataContract) -> _Scanned | None:
    """Stream a source whose reader streams exactly (parquet, DuckDB): the digest of all rows
    and the evaluation rows, exactly as `load` + `split` compute them; None when the source
    must be read whole."""
    import numpy as np

    if not sources.streams(source):
        return None
    plan = _plan(source, contract)
    if not all(_streams_exactly(plan.schema.field(c).type) for c in plan.wanted):
        return None
    found = _stream(plan, contract)
    if found is None:
        return None
    every, in_eval, frame = found
    frame = frame.take(np.argsort(dc.row_hashes(frame), kind="stable")).reset_index(drop=True)
    return _Scanned(
        every.digest(), every.digest(np.flatnonzero(in_eval)), frame, dc.target(frame, contract)
    )


def _stream(
    plan: _Plan, contract: dc.DataContract
) -> tuple[dc.RowDigest, np.ndarray, pd.DataFrame] | None:
    """(the digest's row hashes of every row, the evaluation mask, the evaluation rows as
    the whole table converts them), batch by batch; None if the batches convert unlike it."""
    import numpy as np
    import pyarrow as pa

    hashes, masks, kept = [], [], []
    kinds: list[list[str]] | None = None
    nulls = dict.fromkeys(plan.wanted, 0)
    # the source's pandas metadata (a nullable Int64 column written by pandas) converts each
    # batch as it converts the whole table
    metadata = plan.schema.metadata
    for batch in sources.batches(plan.source, plan.wanted, plan.text):
        if batch.num_rows == 0:
            continue
        frame = dc.to_frame(pa.Table.from_batches([batch.replace_schema_metadata(metadata)]))
        rows = dc.RowDigest.of(frame)
        if kinds not in (None, rows.kinds):  # e.g. booleans missing in some batches only
            return None
        kinds = rows.kinds
        mask = dc.evaluation_mask(frame, contract)
        hashes.append(rows.hashes)
        masks.append(mask)
        kept.append(batch.filter(pa.array(mask)))
        for c in plan.wanted:
            nulls[c] += batch.column(c).null_count
    if kinds is None:
        return None  # no rows: `load` says so
    try:
        table = pa.Table.from_batches(kept).replace_schema_metadata(metadata)
    except pa.ArrowInvalid:  # part files with different schemas: the dataset unifies them
        return None
    del kept
    every = dc.RowDigest(kinds, np.concatenate(hashes), {})
    return every, np.concatenate(masks), _as_in_table(dc.to_frame(table, release=True), nulls)


def _as_in_table(frame: pd.DataFrame, nulls: dict[str, int]) -> pd.DataFrame:
    """Columns converted as in the whole table, where they have a missing value somewhere:
    numpy integers become floats, numpy booleans Python objects (pandas' nullable types are
    the same either way)."""
    import numpy as np

    for c, missing in nulls.items():
        dtype = frame[c].dtype
        if not missing or not isinstance(dtype, np.dtype):
            continue
        if dtype.kind in "iu":
            frame[c] = frame[c].astype("float64")
        elif dtype.kind == "b":
            frame[c] = frame[c].astype(object)
    return frame


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
