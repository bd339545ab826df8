"""An MLflow dataset source for the tables MLflow cannot name by itself: DuckDB tables
(`duckdb:///path.duckdb?table=...`), the built-in generator (`synthetic://...`) and any other
reader registered with `mlflow_source` (magenta_release/io/sources/registry.py).

Registered through MLflow's `mlflow.dataset_source` entry point (pyproject.toml), so plain
`mlflow.data.from_pandas(df, source="duckdb:///...")` in a team's own training code resolves it
too. It names where the rows are; it never stores one."""

from __future__ import annotations

from typing import Any

from mlflow.data.dataset_source import DatasetSource


class TableSource(DatasetSource):
    """A table the release tool can re-read, identified by its source URI."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "magenta-table"

    def load(self) -> Any:
        """The table as a pandas DataFrame (every column)."""
        from magenta_release.io import sources

        return sources.read(sources.parse(self.uri)).to_pandas()

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        if not isinstance(raw_source, str):
            return False
        from magenta_release.io.sources import registry

        return raw_source.startswith(registry.mlflow_schemes())

    @classmethod
    def _resolve(cls, raw_source: Any) -> TableSource:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> TableSource:
        return cls(str(source_dict["uri"]))
