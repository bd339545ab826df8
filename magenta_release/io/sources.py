"""Data sources: one door for every table the tool reads.

A source is a URI:

- a parquet file or a folder of parquet files: a local path, or any fsspec URL
  (`gs://bucket/features/` in production through gcsfs; `file://`, `memory://`);
- a CSV file (`.csv`);
- a DuckDB table: `duckdb:///abs/path/analytics.duckdb?table=features`
  (`duckdb://relative/path.duckdb?table=...` for a relative path);
- the built-in generator: `synthetic://magenta-churn-synthetic/v1?seed=42&rows=100000`
  (optionally `&drift=0.5`: a drifted population, see `magenta_release.core.synthetic`).

Every reader returns Arrow data and reads only the columns asked for; `batches` streams record
batches so that scoring a table of any size needs memory for one batch only. Every failure is a
`BadInput` naming the source and the fix (exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.core.extras import require

if TYPE_CHECKING:
    import pyarrow as pa

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
BATCH_ROWS = 65_536
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Source:
    """A parsed source URI."""

    uri: str
    kind: str  # "parquet" | "csv" | "duckdb" | "synthetic"
    location: str  # a path or fsspec URL; the database file for duckdb
    table: str = ""
    params: dict[str, str] = field(default_factory=dict)
    flag: str = "--data"  # how the user named it, for messages

    @property
    def label(self) -> str:
        return f"{self.flag} {self.uri}"

    @property
    def is_local(self) -> bool:
        return self.kind in {"duckdb", "synthetic"} or "://" not in self.location


def protocol(uri: str) -> str:
    """The protocol a source URI is read over: `file` for a local path (or file://), else its
    scheme (`gs`, `duckdb`, `synthetic`, `http`, ...)."""
    scheme = urlsplit(uri.strip()).scheme.lower()
    return scheme if len(scheme) > 1 else "file"  # "C:" is a drive, not a scheme


def require_protocol(uri: str, allowed: tuple[str, ...], flag: str = "--data") -> None:
    """Refuse (exit 3) a source the policy's `[residency] allowed_source_protocols` does not
    allow, before anything is opened. fsspec's `a::b` chains are refused as such: the outer
    protocol would hide the one that is read. A URI that is no source at all (an unknown
    scheme, a malformed URI) stays what it was: BadInput (exit 2), from `parse`."""
    parse(uri, flag)  # reads nothing: only the URI and the local path
    found = protocol(uri)
    if "::" in uri or found not in allowed:
        shown = "a chained fsspec URL (::)" if "::" in uri else f"protocol {found!r}"
        raise IntegrityViolation(
            f"{flag} {uri[:200]} is read over {shown}, which the release policy does not allow "
            f"(allowed_source_protocols under [residency]: {', '.join(allowed) or 'none'}); "
            "copy the table to an allowed location, or have a policy owner allow the protocol"
        )


def parse(uri: str, flag: str = "--data") -> Source:
    """Parse a source URI; BadInput for an unknown scheme or a malformed URI."""
    return replace(_parse(uri, flag), flag=flag)


def _parse(uri: str, flag: str) -> Source:
    uri = uri.strip()
    if not uri:
        raise BadInput(f"{flag} is empty; give a parquet/CSV path or duckdb:///PATH?table=NAME")
    if "\x00" in uri or any(ord(c) < 32 for c in uri):
        raise BadInput(f"{flag} contains control characters; give a plain path or URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower() if len(parts.scheme) > 1 else ""  # "C:" is not a scheme
    if scheme == "duckdb":
        return _parse_duckdb(uri, parts, flag)
    if scheme == "synthetic":
        return _parse_synthetic(uri, parts, flag)
    if scheme and scheme != "file":
        import fsspec

        if scheme not in fsspec.available_protocols():
            raise BadInput(
                f"{flag} {uri}: unknown scheme {scheme!r}; use a path, duckdb:///PATH?table=NAME, "
                "or an fsspec URL such as gs://bucket/folder/"
            )
        if scheme in ("gs", "gcs"):
            require("gcsfs", f"{flag} {uri}")
    location = parts.path if scheme == "file" else uri
    lower = location.lower().rstrip("/")
    if lower.endswith(".csv"):
        return Source(uri, "csv", location)
    suffix = Path(lower).suffix
    if suffix and suffix not in PARQUET_SUFFIXES and not (scheme or Path(location).is_dir()):
        raise BadInput(
            f"{flag} {uri}: unknown file type {suffix!r}; use a .parquet or .csv file, a folder "
            "of parquet files, or duckdb:///PATH?table=NAME"
        )
    return Source(uri, "parquet", location)


def _parse_synthetic(uri: str, parts: Any, flag: str) -> Source:
    query = dict(parse_qsl(parts.query))
    for key in ("seed", "rows"):
        if not query.get(key, "").isdigit():
            raise BadInput(
                f"{flag} {uri}: synthetic sources need integer seed= and rows=, e.g. "
                "synthetic://magenta-churn-synthetic/v1?seed=42&rows=100000"
            )
    if "drift" in query:  # optional: the generator's drift knob (magenta_release.core.synthetic)
        try:
            drift = float(query["drift"])
        except ValueError:
            drift = -1.0
        if not 0.0 <= drift <= 1.0:
            raise BadInput(f"{flag} {uri}: drift= must be a number from 0 to 1, e.g. drift=0.5")
    return Source(uri, "synthetic", "", params=query)


def _parse_duckdb(uri: str, parts: Any, flag: str) -> Source:
    query = dict(parse_qsl(parts.query))
    table = query.get("table", "")
    if not _TABLE.match(table):
        raise BadInput(
            f"{flag} {uri}: name the table, e.g. duckdb:///path/analytics.duckdb?table=features "
            "(letters, digits and _; schema.table allowed)"
        )
    # duckdb:///abs/path -> netloc "" and path "/abs/path"; duckdb://rel/path -> "rel" + "/path"
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if not path:
        raise BadInput(f"{flag} {uri}: no database file; use duckdb:///PATH?table=NAME")
    return Source(uri, "duckdb", path, table=table)


def schema(source: Source) -> pa.Schema:
    """The source's columns and Arrow types, without reading its rows; BadInput for a table
    with duplicate column names (readers would silently rename or pick one)."""
    found = _schema(source)
    names = list(found.names)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(
            f"{source.label} has duplicate columns: {', '.join(dupes)}; rename one of each"
        )
    if not names:
        raise BadInput(f"{source.label} has no columns (an empty folder or file?)")
    return found


def _schema(source: Source) -> pa.Schema:
    if source.kind == "synthetic":
        # The generator's columns and types do not depend on its size: build the smallest
        # table it makes, not the whole one `read` builds next.
        from magenta_release.core.limits import MIN_ROWS

        small = Source(source.uri, source.kind, "", params={**source.params, "rows": str(MIN_ROWS)})
        return read(small).schema
    if source.kind == "duckdb":
        with _guard(source), _duckdb(source) as con:
            _check_table(source, con)
            return con.sql(f"select * from {_quoted(source.table)} limit 0").to_arrow_table().schema  # noqa: S608
    if source.kind == "csv":
        import pyarrow.csv as pacsv

        _check_csv_header(source)
        with _guard(source):
            return pacsv.open_csv(_local_file(source)).schema
    return _dataset(source).schema


def read(
    source: Source, columns: list[str] | None = None, text_columns: tuple[str, ...] = ()
) -> pa.Table:
    """The whole source as one Arrow table, only `columns` if given. `text_columns` are read
    as text where the format guesses types (CSV): identifiers such as `1.000123` must not
    become numbers."""
    import pyarrow as pa

    with _guard(source):
        if source.kind == "synthetic":
            from magenta_release.core.synthetic import generate

            params = source.params
            drift = float(params.get("drift", 0))
            frame = generate(int(params["seed"]), int(params["rows"]), drift).table
            table = pa.Table.from_pandas(frame, preserve_index=False)
            return table.select(columns) if columns else table
        if source.kind == "duckdb":
            with _duckdb(source) as con:
                return con.sql(_select(source, columns)).to_arrow_table()
        if source.kind == "csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(
                _local_file(source),
                convert_options=_csv_options(columns, text_columns),
            )
        return _dataset(source).to_table(columns=columns)


def batches(
    source: Source,
    columns: list[str] | None = None,
    text_columns: tuple[str, ...] = (),
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream the source as record batches of at most `batch_rows` rows."""
    with _guard(source):
        if source.kind == "synthetic":
            yield from read(source, columns).to_batches(max_chunksize=batch_rows)
        elif source.kind == "duckdb":
            with _duckdb(source) as con:
                reader = con.sql(_select(source, columns)).to_arrow_reader(batch_rows)
                yield from reader
        elif source.kind == "csv":
            import pyarrow.csv as pacsv

            reader = pacsv.open_csv(
                _local_file(source),
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                convert_options=_csv_options(columns, text_columns),
            )
            for batch in reader:
                yield from _split(batch, batch_rows)
        else:
            # File by file, batch by batch: pyarrow's dataset scanner reads far ahead of the
            # scoring (1.7 GB peak on 5M rows); one parquet reader at a time, without
            # pre-buffering (which holds every column chunk it has read: 1.07 GB at 20M rows,
            # 545 MB without), stays flat.
            import pyarrow.parquet as pq

            dataset = _dataset(source)
            for path in dataset.files:
                with dataset.filesystem.open_input_file(path) as fh:
                    yield from pq.ParquetFile(fh, pre_buffer=False).iter_batches(
                        batch_size=batch_rows, columns=columns
                    )


def _split(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


def _csv_options(columns: list[str] | None, text_columns: tuple[str, ...]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        include_columns=columns, column_types=dict.fromkeys(text_columns, pa.string())
    )


def _quoted(table: str) -> str:
    return ".".join(f'"{part}"' for part in table.split("."))


def _select(source: Source, columns: list[str] | None) -> str:
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns) if columns else "*"
    return f"select {cols} from {_quoted(source.table)}"  # noqa: S608 - names are validated/quoted


# DuckDB installs and loads extensions from extensions.duckdb.org on demand (a SQLite file
# handed to it fetches the sqlite scanner): no download, no extension loaded behind our back.
# File access stays on: dbt-duckdb's `external` models are views over parquet files.
NO_EXTENSIONS: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
READ_ONLY_DUCKDB: dict[str, Any] = dict(NO_EXTENSIONS)


class _duckdb:
    """A read-only DuckDB connection (never creates or changes the database)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def __enter__(self) -> Any:
        import duckdb

        path = Path(self.source.location).expanduser()
        if not path.is_file():
            raise BadInput(
                f"{self.source.label}: database file {path} does not exist; check the path"
            )
        with open(path, "rb") as fh:
            header = fh.read(16)
        if header == b"SQLite format 3\x00":
            raise BadInput(
                f"{self.source.label}: {path} is a SQLite database, not DuckDB; export the "
                "table to parquet, or into a DuckDB database"
            )
        try:
            self.con = duckdb.connect(str(path), read_only=True, config=READ_ONLY_DUCKDB)
        except duckdb.Error as exc:
            raise BadInput(
                f"{self.source.label}: {path} is not a DuckDB database ({_first(exc)}); check "
                "the path"
            ) from exc
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()


def _check_table(source: Source, con: Any) -> None:
    """BadInput naming the tables that do exist when `?table=` names none of them."""
    found = con.sql(
        "select table_schema, table_name from information_schema.tables order by 1, 2"
    ).fetchall()
    names = {name if schema == "main" else f"{schema}.{name}" for schema, name in found}
    names |= {f"{schema}.{name}" for schema, name in found}
    if source.table in names:
        return
    shown = sorted(n for n in names if "." not in n or not n.startswith("main."))
    raise BadInput(
        f"{source.label}: table {source.table!r} does not exist in the database (tables: "
        f"{', '.join(shown[:10]) or 'none'}); check ?table="
    )


def _check_csv_header(source: Source) -> None:
    """Duplicate header names, before pyarrow guesses at them."""
    import csv

    if "://" in source.location:
        return
    try:
        with open(_local_file(source), encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError as exc:
        raise BadInput(f"{source.label} is not UTF-8 text; save it as UTF-8 CSV") from exc
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise BadInput(
            f"{source.label} has duplicate columns: {', '.join(dupes)}; rename one of each"
        )


def _local_file(source: Source) -> str:
    if "://" in source.location:
        return source.location  # pyarrow opens fsspec-less URLs itself only for local files
    path = Path(source.location).expanduser()
    if not path.is_file():
        raise BadInput(f"{source.label}: file {path} does not exist; check the path")
    return str(path)


def _dataset(source: Source) -> Any:
    """A pyarrow dataset over a parquet file or folder, local or through fsspec."""
    import pyarrow.dataset as ds

    location = source.location
    filesystem = None
    if "://" in location:
        import fsspec.core
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        try:
            fs, path = fsspec.core.url_to_fs(location)
        except (ImportError, ValueError) as exc:
            raise BadInput(f"{source.label}: cannot open ({_first(exc)})") from exc
        filesystem, location = PyFileSystem(FSSpecHandler(fs)), path
    else:
        path_obj = Path(location).expanduser()
        if not path_obj.exists():
            raise BadInput(f"{source.label}: {path_obj} does not exist; check the path")
        location = str(path_obj)
        if path_obj.is_dir():
            _check_folder(source, path_obj)
    with _guard(source):
        return ds.dataset(location, filesystem=filesystem, format="parquet")


def _check_folder(source: Source, folder: Path) -> None:
    """A folder must hold parquet files: say which files it holds instead (an export that
    wrote CSV, or did not run), not which one pyarrow failed to parse. What pyarrow skips
    (`_SUCCESS`, `.part-0.parquet.crc`, `_temporary/`) does not count."""
    files = [
        p
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    ]
    others = [p.name for p in files if p.suffix.lower() not in PARQUET_SUFFIXES]
    if not files:
        what = "is empty: no parquet files, no columns"
    elif len(others) == len(files):
        what = f"holds no parquet files (found {', '.join(others[:5])})"
    elif others:
        raise BadInput(
            f"{source.label}: folder {folder} holds files that are not parquet "
            f"({', '.join(others[:5])}); move them out of the folder"
        )
    else:
        return
    raise BadInput(
        f"{source.label}: folder {folder} {what}; point at a folder of .parquet files, or at "
        "the file itself"
    )


def _mismatched_parts(source: Source) -> str:
    """Which part file of a parquet folder disagrees with the first on a column's type, in
    words; empty if none does (read only when a read failed: one footer per file)."""
    try:
        fragments = list(_dataset(source).get_fragments())
        first = fragments[0].physical_schema
        for fragment in fragments[1:]:
            for col in fragment.physical_schema:
                if col.name in first.names and first.field(col.name).type != col.type:
                    return (
                        f"column {col.name} is {col.type} in {Path(fragment.path).name} but "
                        f"{first.field(col.name).type} in {Path(fragments[0].path).name}; "
                        "rewrite the parts with one schema"
                    )
    except (BadInput, OSError, ValueError, IndexError):
        return ""
    return ""


class _guard:
    """Turn reader errors (pyarrow, DuckDB, OS) into one-line BadInput errors."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None or isinstance(exc, BadInput | GeneratorExit | KeyboardInterrupt):
            return
        if not isinstance(exc, Exception):
            return
        import pyarrow as pa

        text = _first(exc)
        if "invalid UTF8" in text or isinstance(exc, UnicodeDecodeError):
            raise BadInput(f"{self.source.label} is not UTF-8 text; save it as UTF-8 CSV") from exc
        if "Empty CSV file" in text:
            raise BadInput(f"{self.source.label} has no rows") from exc
        if "Catalog Error" in text or ("does not exist" in text and "Table" in text):
            raise BadInput(
                f"{self.source.label}: table {self.source.table!r} does not exist in the "
                "database; check ?table="
            ) from exc
        if "magic bytes not found" in text or "Is this a 'parquet' file" in text:
            raise BadInput(
                f"{self.source.label} cannot be read: not a parquet file, or a damaged one (no "
                "parquet footer); export it again, or check the path"
            ) from exc
        if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError | OSError | ValueError) or (
            type(exc).__module__.split(".")[0] in {"duckdb", "pyarrow", "_duckdb"}
        ):
            missing_column = "not found" in text.lower() and "column" in text
            if "No match for FieldRef" in text or missing_column:
                raise BadInput(f"{self.source.label}: a column is missing ({text})") from exc
            parts = _mismatched_parts(self.source) if self._is_folder() else ""
            if parts:
                raise BadInput(f"{self.source.label}: {parts}") from exc
            raise BadInput(
                f"{self.source.label} cannot be read as {self.source.kind} ({text})"
            ) from exc

    def _is_folder(self) -> bool:
        location = self.source.location
        return self.source.kind == "parquet" and "://" not in location and Path(location).is_dir()


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def write_duckdb(frame: Any, path: Path, table: str) -> str:
    """Write a DataFrame as a DuckDB table (replacing it) and return its source URI."""
    import duckdb

    if not _TABLE.match(table):
        raise BadInput(f"table name {table!r} is not allowed; use letters, digits and _")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), config=NO_EXTENSIONS)
    try:
        con.register("frame_view", frame)
        con.execute(f"create or replace table {_quoted(table)} as select * from frame_view")  # noqa: S608
    finally:
        con.close()
    return f"duckdb://{path.resolve()}?table={table}"
