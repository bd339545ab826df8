"""A DuckDB table: `duckdb:///abs/path/analytics.duckdb?table=features`
(`duckdb://relative/path.duckdb?table=...` for a relative path), read read-only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qsl

from magenta_release.core.errors import BadInput
from magenta_release.io.sources.base import Source, first_line, guard

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

# DuckDB installs and loads extensions from extensions.duckdb.org on demand (a SQLite file
# handed to it fetches the sqlite scanner): no download, no extension loaded behind our back.
# File access stays on: dbt-duckdb's `external` models are views over parquet files.
NO_EXTENSIONS: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
READ_ONLY_DUCKDB: dict[str, Any] = dict(NO_EXTENSIONS)


class DuckDBTable:
    """The reader of `duckdb://` URIs."""

    kinds: tuple[str, ...] = ("duckdb",)
    schemes: tuple[str, ...] = ("duckdb",)
    mlflow_source = True

    def parse(self, uri: str, parts: SplitResult, scheme: str, flag: str) -> Source:
        query = dict(parse_qsl(parts.query))
        table = query.get("table", "")
        if not TABLE_NAME.match(table):
            raise BadInput(
                f"{flag} {uri}: name the table, e.g. "
                "duckdb:///path/analytics.duckdb?table=features "
                "(letters, digits and _; schema.table allowed)"
            )
        # duckdb:///abs/path -> netloc "" and path "/abs/path"; duckdb://rel/path -> "rel" + "/path"
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path:
            raise BadInput(f"{flag} {uri}: no database file; use duckdb:///PATH?table=NAME")
        return Source(uri, "duckdb", path, table=table)

    def streams(self, source: Source) -> bool:
        return True

    def canonical(self, source: Source) -> Source:
        path = Path(source.location).expanduser().resolve()
        return Source(
            f"duckdb://{path}?table={source.table}",
            "duckdb",
            str(path),
            source.table,
            flag=source.flag,
        )

    def protocols(self, source: Source) -> tuple[str, ...]:
        return ("duckdb",)

    def local_file(self, source: Source) -> str | None:
        return None  # the output's suffix (.parquet, .csv) already keeps it off the database

    def schema(self, source: Source) -> pa.Schema:
        with guard(source), connect(source) as con:
            _check_table(source, con)
            return con.sql(f"select * from {quoted(source.table)} limit 0").to_arrow_table().schema  # noqa: S608

    def read(
        self, source: Source, columns: list[str] | None, text_columns: tuple[str, ...]
    ) -> pa.Table:
        with connect(source) as con:
            return con.sql(_select(source, columns)).to_arrow_table()

    def batches(
        self,
        source: Source,
        columns: list[str] | None,
        text_columns: tuple[str, ...],
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        with connect(source) as con:
            relation = con.sql(_select(source, columns))
            # DuckDB 1.4 added to_arrow_reader; fetch_arrow_reader is its name before that
            # (duckdb 1.2 is the floor of the supported range, make test-compat)
            stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
            yield from stream(batch_rows)

    def diagnose(self, source: Source) -> str:
        return ""


READER = DuckDBTable()


def quoted(table: str) -> str:
    return ".".join(f'"{part}"' for part in table.split("."))


def _select(source: Source, columns: list[str] | None) -> str:
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns) if columns else "*"
    return f"select {cols} from {quoted(source.table)}"  # noqa: S608 - names are validated/quoted


class connect:
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
                f"{self.source.label}: {path} is not a DuckDB database ({first_line(exc)}); "
                "check the path"
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


def write_duckdb(frame: Any, path: Path, table: str) -> str:
    """Write a DataFrame as a DuckDB table (replacing it) and return its source URI."""
    import duckdb

    if not TABLE_NAME.match(table):
        raise BadInput(f"table name {table!r} is not allowed; use letters, digits and _")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), config=NO_EXTENSIONS)
    try:
        con.register("frame_view", frame)
        con.execute(f"create or replace table {quoted(table)} as select * from frame_view")  # noqa: S608
    finally:
        con.close()
    return f"duckdb://{path.resolve()}?table={table}"
