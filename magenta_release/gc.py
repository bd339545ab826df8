"""`gc`: free artifact storage of runs nobody proposed. Dry-run unless asked; never touches
registered versions, their runs or the audit log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from magenta_release.errors import BadInput
from magenta_release.repair import RepairReport, repair
from magenta_release.store import RunInfo, Store


@dataclass(frozen=True)
class GcResult:
    applied: bool
    older_than_days: float
    runs: list[dict[str, Any]]
    bytes: int
    repaired: RepairReport = field(default_factory=RepairReport)

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "older_than_days": self.older_than_days,
            "runs": self.runs,
            "bytes": self.bytes,
            "bytes_freed": self.bytes if self.applied else 0,
            "repaired": self.repaired.to_json(),
        }


def gc(
    store: Store, *, older_than_days: float = 30, apply: bool = False, by: str | None = None
) -> GcResult:
    """List (or with apply=True delete) artifacts of unproposed runs older than the limit."""
    if not 0 <= older_than_days <= 36500:
        raise BadInput(f"--older-than {older_than_days} is out of range; use 0 to 36500 days")
    if apply:
        store.check_residency()
    repaired = repair(store, store.settings.actor(by))
    cutoff = (time.time() - older_than_days * 86400) * 1000
    proposed = {v.run_id for v in store.versions()}
    candidates: list[tuple[RunInfo, int]] = []
    for run in store.search_runs("attributes.status != 'RUNNING'", max_results=50_000):
        if run.run_id in proposed or run.start_time > cutoff:
            continue
        if run.tags.get("magenta.artifacts_deleted") == "true":
            continue
        candidates.append((run, store.artifact_bytes(run.run_id)))
    if apply:
        for run, _ in candidates:
            store.delete_run_artifacts(run)
    now = time.time() * 1000
    runs = [
        {
            "run_id": r.run_id,
            "run_name": r.name,
            "status": r.status,
            "age_days": round((now - r.start_time) / 86400e3, 1),
            "bytes": size,
        }
        for r, size in candidates
    ]
    return GcResult(apply, older_than_days, runs, sum(size for _, size in candidates), repaired)
