"""Parquet and CSV files: a local path, a folder of parquet files, or any fsspec URL
(`gs://bucket/features/` in production through gcsfs; `file://`, `memory://`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from magenta_release.core.errors import BadInput
from magenta_release.core.extras import require
from magenta_release.io.sources.base import Source, first_line, guard, scheme_of, split

if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_SUFFIXES = (".parquet", ".pq")


class Files:
    """The reader of plain paths and fsspec URLs (the registry's fallback)."""

    kinds: tuple[str, ...] = ("parquet", "csv")
    schemes: tuple[str, ...] = ("", "file")
    mlflow_source = False  # MLflow names paths and URLs itself

    def parse(self, uri: str, parts: SplitResult, scheme: str, flag: str) -> Source:
        if scheme and scheme != "file":
            import fsspec

            if scheme not in fsspec.available_protocols():
                raise BadInput(
                    f"{flag} {uri}: unknown scheme {scheme!r}; use a path, "
                    "duckdb:///PATH?table=NAME, or an fsspec URL such as gs://bucket/folder/"
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
                f"{flag} {uri}: unknown file type {suffix!r}; use a .parquet or .csv file, a "
                "folder of parquet files, or duckdb:///PATH?table=NAME"
            )
        return Source(uri, "parquet", location)

    def streams(self, source: Source) -> bool:
        # CSV guesses each block's types on its own: only parquet batches convert as the whole
        return source.kind == "parquet"

    def canonical(self, source: Source) -> Source:
        if "://" in source.uri:
            return source
        path = Path(source.location).expanduser().resolve()
        return Source(str(path), source.kind, str(path), flag=source.flag)

    def protocols(self, source: Source) -> tuple[str, ...]:
        return (scheme_of(source.uri) or "file",)

    def local_file(self, source: Source) -> str | None:
        return None if "://" in source.location else source.location

    def schema(self, source: Source) -> pa.Schema:
        if source.kind == "csv":
            import pyarrow.csv as pacsv

            _check_csv_header(source)
            with guard(source, self.diagnose):
                return pacsv.open_csv(_local_file(source)).schema
        return _dataset(source).schema

    def read(
        self, source: Source, columns: list[str] | None, text_columns: tuple[str, ...]
    ) -> pa.Table:
        if source.kind == "csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(
                _local_file(source), convert_options=_csv_options(columns, text_columns)
            )
        return _dataset(source).to_table(columns=columns)

    def batches(
        self,
        source: Source,
        columns: list[str] | None,
        text_columns: tuple[str, ...],
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        if source.kind == "csv":
            import pyarrow.csv as pacsv

            reader = pacsv.open_csv(
                _local_file(source),
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                convert_options=_csv_options(columns, text_columns),
            )
            for batch in reader:
                yield from split(batch, batch_rows)
            return
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

    def diagnose(self, source: Source) -> str:
        location = source.location
        is_folder = source.kind == "parquet" and "://" not in location and Path(location).is_dir()
        return _mismatched_parts(source) if is_folder else ""


READER = Files()


def _csv_options(columns: list[str] | None, text_columns: tuple[str, ...]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        include_columns=columns, column_types=dict.fromkeys(text_columns, pa.string())
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
            raise BadInput(f"{source.label}: cannot open ({first_line(exc)})") from exc
        filesystem, location = PyFileSystem(FSSpecHandler(fs)), path
    else:
        path_obj = Path(location).expanduser()
        if not path_obj.exists():
            raise BadInput(f"{source.label}: {path_obj} does not exist; check the path")
        location = str(path_obj)
        if path_obj.is_dir():
            _check_folder(source, path_obj)
    with guard(source, READER.diagnose):
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
