"""Repair after an interrupted command (a killed process, a lost connection).

The audit log is written before the registry is changed, so it is the record of every decision:
repair brings statuses and aliases back to what the log says, records proposals whose event was
never written, marks runs of dead training processes FAILED, and appends one `repair` event
naming every fix so nothing is silently rewritten."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from magenta_release import audit, faults
from magenta_release.lock import process_gone, release_lock
from magenta_release.store import STATUS_TAG, Store

STALE_RUN_HOURS = 24


@dataclass(frozen=True)
class RepairReport:
    failed_runs: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.failed_runs or self.fixes)

    def to_json(self) -> dict[str, Any]:
        return {"failed_runs": self.failed_runs, "fixes": self.fixes}


def dead_runs(store: Store) -> list[str]:
    """RUNNING runs whose training process is gone (same host) or that are a day old."""
    now = time.time() * 1000
    dead = []
    for run in store.search_runs("attributes.status = 'RUNNING'", max_results=1000):
        gone = process_gone(run.tags.get("magenta.host"), run.tags.get("magenta.pid"))
        if gone or now - run.start_time > STALE_RUN_HOURS * 3600 * 1000:
            dead.append(run.run_id)
    return dead


def repair_locked(store: Store, actor: str) -> list[str]:
    """Bring the registry in line with the log. Call with the release lock held."""
    log = audit.events(store)
    problems = audit.drift(store, log)
    fixes: list[str] = []
    for d in problems:
        if d.kind != "orphan" or d.version is None:
            continue
        v = store.version(d.version)
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
    fixes += sync(store, audit.drift(store) if fixes else problems)
    if fixes:
        champion = audit.expected_state(audit.events(store)).champion
        audit.append(
            store,
            actor=actor,
            action="repair",
            version=None,
            status=None,
            champion_before=champion,
            champion_after=champion,
            reason="; ".join(fixes)[:2000],
            details={"fixes": fixes},
        )
    return fixes


def sync(store: Store, problems: list[audit.Drift] | None = None) -> list[str]:
    """Apply the state the log implies: statuses first, then @champion, @previous,
    @challenger. Every state change appends its event and then calls this."""
    problems = audit.drift(store) if problems is None else problems
    done: list[str] = []
    for d in problems:
        if d.kind == "status" and d.version is not None:
            store.set_version_tags(d.version, {STATUS_TAG: str(d.expected)})
            done.append(f"version {d.version}: status {d.actual!r} -> {d.expected!r}")
    order = {"champion": 0, "previous": 1, "challenger": 2}
    for d in sorted((d for d in problems if d.kind == "alias"), key=lambda d: order[d.key]):
        store.set_alias(d.key, d.expected)
        done.append(f"@{d.key}: {d.actual} -> {d.expected}")
        if d.key == "champion":
            faults.point("sync.after_champion_alias")
    return done


def needs_repair(store: Store) -> bool:
    """Cheap check (no lock): any drift other than a manifest mismatch, or a dead run."""
    return any(d.kind != "manifest" for d in audit.drift(store)) or bool(dead_runs(store))


def repair(store: Store, actor: str) -> RepairReport:
    """Mark dead runs FAILED; under the release lock, replay the log onto the registry."""
    failed = dead_runs(store)
    for run_id in failed:
        store.end_run(run_id, "FAILED")
    fixes: list[str] = []
    if any(d.kind != "manifest" for d in audit.drift(store)):
        with release_lock(store):
            fixes = repair_locked(store, actor)
    return RepairReport(failed, fixes)
