"""The reader registry: which reader parses a URI, and which reads a parsed `Source`.

A kind of table is one module with one `Reader` and one `register` line in
`magenta_release/io/sources/__init__.py`; every path that reads a table (the schema, a whole
read, streamed batches, the residency check, the canonical URI recorded on a run, the MLflow
dataset source) asks the registry instead of naming kinds itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol
from urllib.parse import SplitResult

from magenta_release.io.sources.base import Source

if TYPE_CHECKING:
    import pyarrow as pa


class Reader(Protocol):
    """One kind of table: how its URI is parsed and described, and how it is read."""

    # the `Source.kind` values it reads (one reader may read several: parquet and CSV)
    kinds: tuple[str, ...]
    # the URI schemes it parses; "" is the fallback: plain paths and any scheme no reader
    # claims (fsspec URLs), whose reader says "unknown scheme" for what it cannot read
    schemes: tuple[str, ...]
    # MLflow cannot name it by itself: `io.dataset_source` resolves its URIs for MLflow
    mlflow_source: bool

    def parse(self, uri: str, parts: SplitResult, scheme: str, flag: str) -> Source:
        """The parsed URI (reads nothing but the local path); BadInput naming the fix."""
        ...

    def streams(self, source: Source) -> bool:
        """Its batches convert exactly as its whole table does, so propose may stream it and
        keep only the evaluation rows (`io.datasets`); else it is read whole."""
        ...

    def canonical(self, source: Source) -> Source:
        """The same table named from anywhere (local paths made absolute)."""
        ...

    def protocols(self, source: Source) -> tuple[str, ...]:
        """What it is read over, each of which `[residency] allowed_source_protocols` must
        allow."""
        ...

    def local_file(self, source: Source) -> str | None:
        """The local file an output must never overwrite, or None."""
        ...

    def schema(self, source: Source) -> pa.Schema:
        """Its columns and Arrow types, without reading its rows."""
        ...

    def read(
        self, source: Source, columns: list[str] | None, text_columns: tuple[str, ...]
    ) -> pa.Table:
        """The whole table, only `columns` if given; `text_columns` as text where the format
        guesses types."""
        ...

    def batches(
        self,
        source: Source,
        columns: list[str] | None,
        text_columns: tuple[str, ...],
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        """The table as record batches of at most `batch_rows` rows."""
        ...

    def diagnose(self, source: Source) -> str:
        """After a failed read: why, in words, or "" (then the reader's error is shown)."""
        ...


_BY_KIND: dict[str, Reader] = {}
_BY_SCHEME: dict[str, Reader] = {}


def register(reader: Reader) -> None:
    """Make `reader` the one for its kinds and schemes (a kind or scheme is read one way)."""
    taken = [k for k in reader.kinds if k in _BY_KIND] + [
        s for s in reader.schemes if s in _BY_SCHEME
    ]
    if taken:
        raise ValueError(f"a reader is already registered for {', '.join(map(repr, taken))}")
    _BY_KIND.update(dict.fromkeys(reader.kinds, reader))
    _BY_SCHEME.update(dict.fromkeys(reader.schemes, reader))


def unregister(reader: Reader) -> None:
    """Forget `reader` (a test's own kind)."""
    for table in (_BY_KIND, _BY_SCHEME):
        for key in [k for k, found in table.items() if found is reader]:
            del table[key]


def for_scheme(scheme: str) -> Reader:
    """The reader of a URI scheme ("" for a plain path); the fallback for any other."""
    return _BY_SCHEME.get(scheme) or _BY_SCHEME[""]


def of(source: Source) -> Reader:
    """The reader of a parsed source."""
    return _BY_KIND[source.kind]


def mlflow_schemes() -> tuple[str, ...]:
    """The URI prefixes `io.dataset_source` resolves for MLflow (`duckdb://`, ...)."""
    return tuple(
        f"{scheme}://" for scheme, reader in _BY_SCHEME.items() if scheme and reader.mlflow_source
    )
