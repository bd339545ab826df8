"""`repair`: the explicit restore after an interrupted command or an out-of-band change.

The audit log is written before the registry is changed, so it is the record of every decision.
Repair records proposals whose event was never written, brings statuses and aliases back to
what the log says, marks runs of dead training processes FAILED, and appends one `repair` event
naming who repaired, why, and every difference it found, so nothing is silently rewritten.
Nothing else repairs: read commands report drift as an integrity alert (exit 3)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from magenta_release import audit, lifecycle
from magenta_release.errors import BadInput
from magenta_release.lock import process_gone, release_lock
from magenta_release.store import Store

STALE_RUN_HOURS = 24


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


def dead_runs(store: Store) -> list[str]:
    """RUNNING runs whose training process is gone (same host) or that are a day old."""
    now = time.time() * 1000
    dead = []
    for run in store.runs.search_runs("attributes.status = 'RUNNING'", max_results=1000):
        gone = process_gone(run.tags.get("magenta.host"), run.tags.get("magenta.pid"))
        if gone or now - run.start_time > STALE_RUN_HOURS * 3600 * 1000:
            dead.append(run.run_id)
    return dead


def _record_orphans(store: Store, problems: list[lifecycle.Drift]) -> list[str]:
    """Proposals an interrupted command left without an event: record them first."""
    fixes = []
    for d in problems:
        if d.kind != "orphan" or d.version is None:
            continue
        v = store.registry.version(d.version)
        base = v.tags.get("release.baseline_version", "none")
        baseline = int(base) if base.isdigit() else None
        audit.append(
            store,
            actor=v.tags.get("release.proposed_by", "unknown"),
            action="propose",
            version=v.version,
            status=v.status,
            champion_before=baseline,
            champion_after=baseline,
            reason=v.tags.get("release.note", ""),
            evidence_sha256=v.tags.get("release.evidence_sha256", ""),
            manifest_sha256=v.tags.get("release.manifest_sha256", ""),
            details={"run_id": v.run_id, "recovered": True},
        )
        fixes.append(
            f"recorded the proposal of version {v.version} ({v.status}) that an "
            "interrupted command left without an event"
        )
    return fixes


def repair(store: Store, actor: str, reason: str) -> RepairReport:
    """Under the release lock: mark dead runs FAILED, record orphaned proposals, replay the log
    onto the registry, and append a `repair` event with what was found and fixed."""
    from magenta_release.release import MAX_REASON, check_text

    check_text(reason, "--reason", MAX_REASON)
    if not reason.strip():
        raise BadInput("--reason is empty; say why the store is repaired (what happened)")
    store.check_residency()  # before any write, repair included
    lifecycle.verified_log(store)  # a broken log is restored from a backup, never repaired
    with release_lock(store):
        problems = lifecycle.drift(store)
        found = [d.message() for d in problems]
        failed = dead_runs(store)
        for run_id in failed:
            store.runs.end_run(run_id, "FAILED")
        fixes = _record_orphans(store, problems)
        fixes += lifecycle.sync(store, lifecycle.drift(store) if fixes else problems)
        if not (fixes or failed):
            return RepairReport(found, failed, fixes)
        champion = lifecycle.expected_state(audit.events(store)).champion
        event = audit.append(
            store,
            actor=actor,
            action="repair",
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
