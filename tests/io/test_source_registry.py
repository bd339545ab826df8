"""A kind of table is one reader registered in one place: a kind this test registers (an
in-memory table behind `memtable://NAME`) is found by every path that reads a table — the
schema, a whole read, streamed batches, the streamed re-read of a run's evaluation rows, the
residency check, the canonical URI and MLflow's dataset source — and nothing else names it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import SplitResult

import pandas as pd
import pyarrow as pa
import pytest

from magenta_release.core.contract import DataContract
from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.core.policy import ResidencySection
from magenta_release.core.synthetic import generate
from magenta_release.io import datasets, sources
from magenta_release.io.sources import Source, registry

CONTRACT = DataContract()


@dataclass
class MemTable:
    """A reader of Arrow tables held in memory, counting which path read them."""

    tables: dict[str, pa.Table]
    stream: bool = True
    broken: bool = False
    kinds: tuple[str, ...] = ("memtable",)
    schemes: tuple[str, ...] = ("memtable",)
    mlflow_source: bool = True
    calls: list[str] = field(default_factory=list)

    def parse(self, uri: str, parts: SplitResult, scheme: str, flag: str) -> Source:
        if parts.netloc not in self.tables:
            raise BadInput(f"{flag} {uri}: no such in-memory table")
        return Source(uri, "memtable", parts.netloc)

    def streams(self, source: Source) -> bool:
        return self.stream

    def canonical(self, source: Source) -> Source:
        return source

    def protocols(self, source: Source) -> tuple[str, ...]:
        return ("memtable",)

    def local_file(self, source: Source) -> str | None:
        return None

    def schema(self, source: Source) -> pa.Schema:
        self.calls.append("schema")
        return self.tables[source.location].schema

    def read(
        self, source: Source, columns: list[str] | None, text_columns: tuple[str, ...]
    ) -> pa.Table:
        self.calls.append("read")
        if self.broken:
            raise OSError("connection reset by peer")
        table = self.tables[source.location]
        return table.select(columns) if columns else table

    def batches(
        self,
        source: Source,
        columns: list[str] | None,
        text_columns: tuple[str, ...],
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        self.calls.append("batches")
        table = self.tables[source.location]
        yield from (table.select(columns) if columns else table).to_batches(batch_rows)

    def diagnose(self, source: Source) -> str:
        return "the in-memory table was dropped"


@pytest.fixture
def memtable() -> Iterator[MemTable]:
    frame = generate(3, 3000).table
    reader = MemTable({"features": pa.Table.from_pandas(frame, preserve_index=False)})
    registry.register(reader)
    try:
        yield reader
    finally:
        registry.unregister(reader)


def test_an_unregistered_kind_is_an_unknown_scheme() -> None:
    """The positive control: before registration the URI is not a source (exit 2)."""
    with pytest.raises(BadInput, match="unknown scheme 'memtable'"):
        sources.parse("memtable://features")
    from magenta_release.io.dataset_source import TableSource

    assert not TableSource._can_resolve("memtable://features")


def test_a_registered_kind_is_parsed_read_and_streamed(memtable: MemTable) -> None:
    source = sources.parse("memtable://features", "--input")
    assert (source.kind, source.flag) == ("memtable", "--input")
    assert sources.canonical(source) == source
    assert sources.local_file(source) is None
    assert sources.schema(source).names == memtable.tables["features"].schema.names
    assert sources.read(source, ["customer_id"]).num_rows == 3000
    rows = [b.num_rows for b in sources.batches(source, ["customer_id"], batch_rows=1000)]
    assert rows == [1000, 1000, 1000]
    assert memtable.calls == ["schema", "read", "batches"]


def test_a_registered_kind_is_judged_by_the_residency_allow_list(memtable: MemTable) -> None:
    default = ResidencySection().allowed_source_protocols
    with pytest.raises(IntegrityViolation, match="read over protocol 'memtable'"):
        sources.require_protocol("memtable://features", default, "--data")
    sources.require_protocol("memtable://features", (*default, "memtable"), "--data")
    # an unknown table of that kind is still bad input, judged before the allow-list
    with pytest.raises(BadInput, match="no such in-memory table"):
        sources.require_protocol("memtable://nothing", default, "--data")


@pytest.mark.parametrize("stream", [True, False])
def test_a_run_on_a_registered_kind_is_reread_streamed_when_it_streams(
    memtable: MemTable, stream: bool
) -> None:
    """propose's re-read of a run's evaluation rows streams the kind when its reader says so,
    and reads it whole otherwise; either way the rows are those recorded."""
    memtable.stream = stream
    table = datasets.load("memtable://features", CONTRACT)
    parts = datasets.split(table, CONTRACT)
    ev = datasets.evidence(table, parts, CONTRACT)
    memtable.calls.clear()

    found = datasets.reread(ev)
    assert not isinstance(found, str), found
    pd.testing.assert_frame_equal(found[0], parts.eval_frame)
    assert ("batches" in memtable.calls) is stream
    assert ("read" in memtable.calls) is not stream


def test_a_failed_read_of_a_registered_kind_says_what_its_reader_knows(
    memtable: MemTable,
) -> None:
    source = sources.parse("memtable://features")
    memtable.broken = True
    with pytest.raises(BadInput, match=r"memtable://features: the in-memory table was dropped"):
        sources.read(source)


def test_mlflow_resolves_a_registered_kind(memtable: MemTable) -> None:
    from magenta_release.io.dataset_source import TableSource

    assert TableSource._can_resolve("memtable://features")
    loaded = TableSource._resolve("memtable://features").load()
    assert len(loaded) == 3000


def test_a_kind_or_scheme_is_read_one_way(memtable: MemTable) -> None:
    with pytest.raises(ValueError, match="'memtable'"):
        registry.register(MemTable({}))
    with pytest.raises(ValueError, match="'duckdb'"):
        registry.register(MemTable({}, kinds=("other",), schemes=("duckdb",)))
