"""The built-in generator: `synthetic://magenta-churn-synthetic/v1?seed=42&rows=100000`
(optionally `&drift=0.5`: a drifted population, see `magenta_release.core.synthetic`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl

from magenta_release.core.errors import BadInput
from magenta_release.io.sources.base import Source, guard

if TYPE_CHECKING:
    import pyarrow as pa


class Synthetic:
    """The reader of `synthetic://` URIs: the rows are generated, nothing is opened."""

    kinds: tuple[str, ...] = ("synthetic",)
    schemes: tuple[str, ...] = ("synthetic",)
    mlflow_source = True

    def parse(self, uri: str, parts: SplitResult, scheme: str, flag: str) -> Source:
        query = dict(parse_qsl(parts.query))
        for key in ("seed", "rows"):
            if not query.get(key, "").isdigit():
                raise BadInput(
                    f"{flag} {uri}: synthetic sources need integer seed= and rows=, e.g. "
                    "synthetic://magenta-churn-synthetic/v1?seed=42&rows=100000"
                )
        if "drift" in query:  # optional: the generator's drift knob (core.synthetic)
            try:
                drift = float(query["drift"])
            except ValueError:
                drift = -1.0
            if not 0.0 <= drift <= 1.0:
                raise BadInput(f"{flag} {uri}: drift= must be a number from 0 to 1, e.g. drift=0.5")
        return Source(uri, "synthetic", "", params=query)

    def streams(self, source: Source) -> bool:
        return False  # generated whole in memory anyway

    def canonical(self, source: Source) -> Source:
        return source

    def protocols(self, source: Source) -> tuple[str, ...]:
        return ("synthetic",)

    def local_file(self, source: Source) -> str | None:
        return None

    def schema(self, source: Source) -> pa.Schema:
        # The generator's columns and types do not depend on its size: build the smallest
        # table it makes, not the whole one `read` builds next.
        from magenta_release.core.limits import MIN_ROWS

        small = Source(source.uri, source.kind, "", params={**source.params, "rows": str(MIN_ROWS)})
        with guard(source):
            return self.read(small, None, ()).schema

    def read(
        self, source: Source, columns: list[str] | None, text_columns: tuple[str, ...]
    ) -> pa.Table:
        import pyarrow as pa

        from magenta_release.core.synthetic import generate

        params = source.params
        drift = float(params.get("drift", 0))
        frame = generate(int(params["seed"]), int(params["rows"]), drift).table
        table = pa.Table.from_pandas(frame, preserve_index=False)
        return table.select(columns) if columns else table

    def batches(
        self,
        source: Source,
        columns: list[str] | None,
        text_columns: tuple[str, ...],
        batch_rows: int,
    ) -> Iterator[pa.RecordBatch]:
        yield from self.read(source, columns, text_columns).to_batches(max_chunksize=batch_rows)

    def diagnose(self, source: Source) -> str:
        return ""


READER = Synthetic()
