"""What every reader shares: the parsed `Source`, and the guard that turns a reader's error
(pyarrow, DuckDB, OS) into one line naming the source and the fix."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from magenta_release.core.errors import BadInput

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class Source:
    """A parsed source URI."""

    uri: str
    kind: str  # a registered reader's kind: "parquet" | "csv" | "duckdb" | "synthetic" | ...
    location: str  # a path or fsspec URL; the database file for duckdb
    table: str = ""
    params: dict[str, str] = field(default_factory=dict)
    flag: str = "--data"  # how the user named it, for messages

    @property
    def label(self) -> str:
        return f"{self.flag} {self.uri}"


def scheme_of(uri: str) -> str:
    """A URI's scheme in lower case; "" for a plain path ("C:" is a drive, not a scheme)."""
    scheme = urlsplit(uri.strip()).scheme.lower()
    return scheme if len(scheme) > 1 else ""


def no_hint(source: Source) -> str:
    """A reader with nothing to add about why a read failed."""
    return ""


class guard:
    """Turn reader errors (pyarrow, DuckDB, OS) into one-line BadInput errors. `diagnose`
    (the reader's) may say in words why a read failed, e.g. which part file of a folder
    disagrees; it is asked only after a failure."""

    def __init__(self, source: Source, diagnose: Callable[[Source], str] = no_hint) -> None:
        self.source = source
        self.diagnose = diagnose

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None or isinstance(exc, BadInput | GeneratorExit | KeyboardInterrupt):
            return
        if not isinstance(exc, Exception):
            return
        import pyarrow as pa

        text = first_line(exc)
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
            hint = self.diagnose(self.source)
            if hint:
                raise BadInput(f"{self.source.label}: {hint}") from exc
            raise BadInput(
                f"{self.source.label} cannot be read as {self.source.kind} ({text})"
            ) from exc


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def split(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    """A batch in slices of at most `rows` rows."""
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)
