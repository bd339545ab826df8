"""`gc`: free artifact storage of runs nobody proposed. A dry run (the default) only reads;
`--apply` takes the release lock, skips every run that has a model version (a proposal being
registered included), and deletes only inside the store it was given."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from magenta_release.app.context import Context
from magenta_release.core import keys
from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.core.records import RunInfo
from magenta_release.io.lock import release_lock


@dataclass(frozen=True)
class GcResult:
    applied: bool
    older_than_days: float
    runs: list[dict[str, Any]]
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "older_than_days": self.older_than_days,
            "runs": self.runs,
            "bytes": self.bytes,
            "bytes_freed": self.bytes if self.applied else 0,
        }


def gc(ctx: Context, *, older_than_days: float = 30, apply: bool = False) -> GcResult:
    """List (or with apply=True delete) artifacts of unproposed runs older than the limit."""
    if not 0 <= older_than_days <= 36500:
        raise BadInput(f"--older-than {older_than_days} is out of range; use 0 to 36500 days")
    if not apply:
        candidates = _candidates(ctx, older_than_days)
    else:
        ctx.check_residency()
        # Under the lock: propose registers under it too, so a run cannot gain a version
        # between the check and the delete. In server mode the release authority copies a
        # proposed run's files where only it writes, so deleting a run's own never loses them
        # (and only the authority takes the lock there).
        lock = release_lock(ctx.store, ctx.model) if ctx.authority is None else nullcontext()
        with lock:
            candidates = _candidates(ctx, older_than_days)
            for run, _ in candidates:
                _check_inside(ctx, run)
            for run, _ in candidates:
                ctx.runs.delete_run_artifacts(run)
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
    return GcResult(apply, older_than_days, runs, sum(size for _, size in candidates))


def _candidates(ctx: Context, older_than_days: float) -> list[tuple[RunInfo, int]]:
    cutoff = (time.time() - older_than_days * 86400) * 1000
    proposed = ctx.registry.registered_runs()  # any model's versions, not only this one's
    found: list[tuple[RunInfo, int]] = []
    for run in ctx.runs.all_runs("attributes.status != 'RUNNING'"):
        if run.run_id in proposed or run.start_time > cutoff:
            continue
        if any(k.startswith(keys.POLICY_PREFIX) for k in run.tags):
            continue  # a stored policy version: part of the audit trail, never garbage
        if run.tags.get(keys.RUN_ARTIFACTS_DELETED) == "true":
            continue
        found.append((run, ctx.runs.artifact_bytes(run.run_id)))
    return found


def _check_inside(ctx: Context, run: RunInfo) -> None:
    """An embedded store deletes only below its own artifact folder: a copied store
    (`cp -a mlruns copy`) still records the original's absolute paths."""
    if not ctx.settings.is_local:
        return
    root = ctx.settings.artifact_root.resolve().as_uri().rstrip("/") + "/"
    if not run.artifact_uri.startswith(root):
        raise IntegrityViolation(
            f"run {run.run_id} keeps its artifacts at {run.artifact_uri}, outside this store "
            f"({root}); it is a copy of another store — gc refuses to delete there"
        )
