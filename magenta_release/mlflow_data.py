"""An MLflow dataset source for the seeded generator: `synthetic://...` names how to rebuild
the data (generator, version, seed, rows) without storing a single row."""

from __future__ import annotations

from typing import Any

from mlflow.data.dataset_source import DatasetSource


class SyntheticSource(DatasetSource):
    """Source of a generated data set, identified by its `synthetic://` reference."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "synthetic"

    def load(self) -> Any:
        from magenta_release.data import DatasetRef, generate

        query = dict(p.split("=") for p in self.uri.split("?", 1)[1].split("&"))
        ref = DatasetRef("magenta-churn-synthetic", "1", int(query["seed"]), int(query["rows"]))
        return generate(ref.seed, ref.rows).table

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith("synthetic://")

    @classmethod
    def _resolve(cls, raw_source: Any) -> SyntheticSource:
        return cls(str(raw_source))

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> SyntheticSource:
        return cls(str(source_dict["uri"]))
