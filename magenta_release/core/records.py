"""The project's own frozen records of MLflow entities (never the entities themselves), and
the canonical JSON that hashes are taken of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from magenta_release.core import keys
from magenta_release.core.audit import dumps

STATUS_TAG = keys.STATUS


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a run logged as an input (`mlflow.log_input`): where and what, never rows."""

    context: str
    name: str
    digest: str
    source_type: str
    source: dict[str, Any]

    @property
    def uri(self) -> str:
        return str(
            self.source.get("uri") or self.source.get("url") or self.source.get("path") or ""
        )


@dataclass(frozen=True)
class LoggedModelInfo:
    """An MLflow 3 LoggedModel of a run."""

    model_id: str
    name: str
    artifact_location: str


@dataclass(frozen=True)
class RunInfo:
    """A tracked training run, as the commands need it."""

    run_id: str
    name: str
    status: str
    start_time: int
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    artifact_uri: str = ""
    inputs: tuple[DatasetInput, ...] = ()

    @property
    def dataset_sha256(self) -> str:
        return self.tags.get(keys.RUN_DATASET_SHA256, "")

    @property
    def evaluation_inputs(self) -> tuple[DatasetInput, ...]:
        """The inputs the run logged with context `evaluation` (a team run's evaluation rows)."""
        return tuple(i for i in self.inputs if i.context == "evaluation")


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version with its release tags and aliases."""

    version: int
    run_id: str
    source: str
    status: str
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    created: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "status": self.status,
            "aliases": list(self.aliases),
            "proposed_by": self.tags.get(keys.PROPOSED_BY),
            "approved_by": self.tags.get(keys.APPROVED_BY),
            "approved_at": self.tags.get(keys.APPROVED_AT),
        }


__all__ = ["STATUS_TAG", "DatasetInput", "LoggedModelInfo", "RunInfo", "VersionInfo", "dumps"]
