"""`repair`: the explicit restore after an interrupted command or an out-of-band change.

The audit log is written before the registry is changed, so it is the record of every decision.
Repair records proposals whose event was never written, brings statuses and aliases back to
what the log says, marks runs of dead training processes FAILED, and appends one `repair` event
naming who repaired, why, and every difference it found, so nothing is silently rewritten.
Nothing else repairs: read commands report drift as an integrity alert (exit 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import lifecycle
from magenta_release.app.services.runs import dead_runs
from magenta_release.core import keys
from magenta_release.core.lifecycle import Drift, DriftKind
from magenta_release.core.limits import require_reason
from magenta_release.core.states import Action
from magenta_release.io.lock import release_lock


@dataclass(frozen=True)
class RepairReport:
    found: list[str] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    event: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.failed_runs or self.fixes)

    def to_json(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "failed_runs": self.failed_runs,
            "fixes": self.fixes,
            "event": self.event,
        }


def _record_orphans(ctx: Context, problems: list[Drift]) -> list[str]:
    """Proposals an interrupted command left without an event: record them first."""
    fixes = []
    for d in problems:
        if d.kind != DriftKind.ORPHAN or d.version is None:
            continue
        v = ctx.registry.version(d.version)
        base = v.tags.get(keys.BASELINE_VERSION, "none")
        baseline = int(base) if base.isdigit() else None
        ctx.record(
            actor=v.tags.get(keys.PROPOSED_BY, "unknown"),
            action=Action.PROPOSE,
            version=v.version,
            status=v.status,
            champion_before=baseline,
            champion_after=baseline,
            reason=v.tags.get(keys.NOTE, ""),
            evidence_sha256=v.tags.get(keys.EVIDENCE_SHA256, ""),
            manifest_sha256=v.tags.get(keys.MANIFEST_SHA256, ""),
            details={"run_id": v.run_id, "recovered": True},
        )
        fixes.append(
            f"recorded the proposal of version {v.version} ({v.status}) that an "
            "interrupted command left without an event"
        )
    return fixes


def repair(ctx: Context, reason: str) -> RepairReport:
    """Under the release lock: mark dead runs FAILED, record orphaned proposals, replay the log
    onto the registry, and append a `repair` event with what was found and fixed. In server
    mode the runs of dead processes on this machine are marked here, and the server's release
    authority does the rest (`commit_repair`)."""
    require_reason(reason, "the store is repaired (what happened)")
    actor = ctx.actor
    ctx.check_residency()  # before any write, repair included
    lifecycle.verified_log(ctx)  # a broken log is restored from a backup, never repaired
    authority = ctx.authority
    if authority is None:
        return commit_repair(ctx, reason, actor=actor, failed_runs=None)
    failed = _end_dead_runs(ctx)
    doc = authority.repair(ctx.model, reason=reason, failed_runs=failed)
    return RepairReport(
        [str(f) for f in doc.get("found") or []],
        failed,
        [str(f) for f in doc.get("fixes") or []],
        doc.get("event"),
    )


def _end_dead_runs(ctx: Context) -> list[str]:
    failed = dead_runs(ctx.runs)
    for run_id in failed:
        ctx.runs.end_run(run_id, "FAILED")
    return failed


def commit_repair(
    ctx: Context, reason: str, *, actor: str, failed_runs: list[str] | None
) -> RepairReport:
    """The repair itself, under the release lock. `failed_runs`: the runs the caller already
    marked FAILED (the release authority's caller), None to find and mark them here."""
    with release_lock(ctx.store, ctx.model):
        ctx.reread()
        problems = lifecycle.drift(ctx)
        found = [d.message() for d in problems]
        failed = _end_dead_runs(ctx) if failed_runs is None else failed_runs
        fixes = _record_orphans(ctx, problems)
        fixes += lifecycle.sync(ctx, lifecycle.drift(ctx) if fixes else problems)
        if not (fixes or failed):
            return RepairReport(found, failed, fixes)
        champion = lifecycle.state(ctx).champion
        event = ctx.record(
            actor=actor,
            action=Action.REPAIR,
            version=None,
            status=None,
            champion_before=champion,
            champion_after=champion,
            reason=reason,
            # bounded: an audit event must fit the store's tag limit (5,000 on PostgreSQL)
            details={
                "found": [f[:200] for f in found[:10]],
                "fixes": [f[:200] for f in fixes[:10]],
                "failed_runs": failed[:10],
            },
        )
    return RepairReport(found, failed, fixes, event.seq)
