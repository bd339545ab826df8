"""Data sources: one door for every table the tool reads.

A source is a URI, read by the reader registered for its scheme (`registry`):

- a parquet file or a folder of parquet files: a local path, or any fsspec URL
  (`gs://bucket/features/` in production through gcsfs; `file://`, `memory://`);
- a CSV file (`.csv`) (both `files`);
- a DuckDB table: `duckdb:///abs/path/analytics.duckdb?table=features`
  (`duckdb://relative/path.duckdb?table=...` for a relative path) (`duckdb_table`);
- the built-in generator: `synthetic://magenta-churn-synthetic/v1?seed=42&rows=100000`
  (optionally `&drift=0.5`: a drifted population, see `magenta_release.core.synthetic`)
  (`synthetic`).

A new kind of table (BigQuery, say) is one module with a `registry.Reader` and one
`registry.register` line below; nothing else names kinds. Every reader returns Arrow data and
reads only the columns asked for; `batches` streams record batches so that scoring a table of
any size needs memory for one batch only. Every failure is a `BadInput` naming the source and
the fix (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.io.sources import duckdb_table, files, registry, synthetic
from magenta_release.io.sources.base import BATCH_ROWS, Source, guard, scheme_of
from magenta_release.io.sources.duckdb_table import NO_EXTENSIONS, READ_ONLY_DUCKDB, write_duckdb
from magenta_release.io.sources.files import PARQUET_SUFFIXES

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BATCH_ROWS",
    "NO_EXTENSIONS",
    "PARQUET_SUFFIXES",
    "READ_ONLY_DUCKDB",
    "Source",
    "batches",
    "canonical",
    "local_file",
    "parse",
    "protocol",
    "read",
    "require_protocol",
    "schema",
    "streams",
    "write_duckdb",
]

registry.register(files.READER)
registry.register(duckdb_table.READER)
registry.register(synthetic.READER)


def protocol(uri: str) -> str:
    """The protocol a source URI is read over: `file` for a local path (or file://), else its
    scheme (`gs`, `duckdb`, `synthetic`, `http`, ...)."""
    return scheme_of(uri) or "file"


def require_protocol(uri: str, allowed: tuple[str, ...], flag: str = "--data") -> None:
    """Refuse (exit 3) a source the policy's `[residency] allowed_source_protocols` does not
    allow, before anything is opened. fsspec's `a::b` chains are refused as such: the outer
    protocol would hide the one that is read. A URI that is no source at all (an unknown
    scheme, a malformed URI) stays what it was: BadInput (exit 2), from `parse`."""
    source = parse(uri, flag)  # reads nothing: only the URI and the local path
    needed = registry.of(source).protocols(source)
    refused = [p for p in needed if p not in allowed]
    if "::" in uri or refused:
        shown = "a chained fsspec URL (::)" if "::" in uri else f"protocol {refused[0]!r}"
        raise IntegrityViolation(
            f"{flag} {uri[:200]} is read over {shown}, which the release policy does not allow "
            f"(allowed_source_protocols under [residency]: {', '.join(allowed) or 'none'}); "
            "copy the table to an allowed location, or have a policy owner allow the protocol"
        )


def parse(uri: str, flag: str = "--data") -> Source:
    """Parse a source URI; BadInput for an unknown scheme or a malformed URI."""
    uri = uri.strip()
    if not uri:
        raise BadInput(f"{flag} is empty; give a parquet/CSV path or duckdb:///PATH?table=NAME")
    if "\x00" in uri or any(ord(c) < 32 for c in uri):
        raise BadInput(f"{flag} contains control characters; give a plain path or URI")
    scheme = scheme_of(uri)
    source = registry.for_scheme(scheme).parse(uri, urlsplit(uri), scheme, flag)
    return replace(source, flag=flag)


def canonical(source: Source) -> Source:
    """The same table named so that it reads the same from any folder (local paths made
    absolute)."""
    return registry.of(source).canonical(source)


def streams(source: Source) -> bool:
    """Whether the source's batches convert exactly as its whole table (propose streams it)."""
    return registry.of(source).streams(source)


def local_file(source: Source) -> str | None:
    """The local file holding the source's rows, which an output must never overwrite."""
    return registry.of(source).local_file(source)


def schema(source: Source) -> pa.Schema:
    """The source's columns and Arrow types, without reading its rows; BadInput for a table
    with duplicate column names (readers would silently rename or pick one)."""
    found = registry.of(source).schema(source)
    names = list(found.names)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(
            f"{source.label} has duplicate columns: {', '.join(dupes)}; rename one of each"
        )
    if not names:
        raise BadInput(f"{source.label} has no columns (an empty folder or file?)")
    return found


def read(
    source: Source, columns: list[str] | None = None, text_columns: tuple[str, ...] = ()
) -> pa.Table:
    """The whole source as one Arrow table, only `columns` if given. `text_columns` are read
    as text where the format guesses types (CSV): identifiers such as `1.000123` must not
    become numbers."""
    reader = registry.of(source)
    with guard(source, reader.diagnose):
        return reader.read(source, columns, text_columns)


def batches(
    source: Source,
    columns: list[str] | None = None,
    text_columns: tuple[str, ...] = (),
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Stream the source as record batches of at most `batch_rows` rows."""
    reader = registry.of(source)
    with guard(source, reader.diagnose):
        yield from reader.batches(source, columns, text_columns, batch_rows)
