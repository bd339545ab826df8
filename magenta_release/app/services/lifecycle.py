"""The registry against the audit log, for a command: `check` (every command, reads only:
an `IntegrityAlert`, exit 3, names what moved), `sync` (write commands after their event, and
the explicit `repair`: the registry follows the log) and `verify` (`audit verify`). The rules
are `core.lifecycle`; the log is the one the command's context read."""

from __future__ import annotations

import time

from magenta_release.app.context import Context
from magenta_release.app.services import notify
from magenta_release.core import faults, keys
from magenta_release.core.audit import HEAD_TAG, Event, Log, Verification
from magenta_release.core.errors import IntegrityViolation
from magenta_release.core.lifecycle import (
    DECISION_TAGS,
    Drift,
    DriftKind,
    IntegrityAlert,
    LogBroken,
    State,
    expected_state,
    verified,
)
from magenta_release.core.lifecycle import drift as compute_drift
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import Action
from magenta_release.io import policy_store
from magenta_release.io.lock import lock_held

__all__ = [
    "IntegrityAlert",
    "LogBroken",
    "check",
    "check_locked",
    "drift",
    "state",
    "sync",
    "verified_log",
    "verify",
]

# A state change writes its event, then moves aliases: a reader that lands in between sees
# drift for a moment. It waits for the release lock before it raises the alarm.
IN_FLIGHT_WAIT_SECONDS = 30.0


def verified_log(ctx: Context) -> list[Event]:
    """The events of the context's log after checking its chain and head (LogBroken if not)."""
    return verified(ctx.log)


def state(ctx: Context) -> State:
    """Where the log says each alias and status must be."""
    return expected_state(verified(ctx.log))


def drift(ctx: Context) -> list[Drift]:
    """Every difference between the registry and the state the context's log implies."""
    return compute_drift(ctx.log, ctx.registry.versions())


def sync(ctx: Context, problems: list[Drift] | None = None) -> list[str]:
    """Apply the state the log implies: statuses first, then @champion, @previous,
    @challenger. Every state change appends its event and then calls this."""
    problems = drift(ctx) if problems is None else problems
    done: list[str] = []
    registry = ctx.registry
    for d in problems:
        if d.kind == DriftKind.HEAD:
            ctx.store.tags.set_model_tag(ctx.model, HEAD_TAG, str(d.expected))
            done.append(f"audit head: {d.actual} -> {d.expected}")
    decided = state(ctx).decisions if any(d.kind == DriftKind.TAG for d in problems) else {}
    for d in problems:
        if d.kind == DriftKind.STATUS and d.version is not None:
            registry.set_version_tags(d.version, {keys.STATUS: str(d.expected)})
            done.append(f"version {d.version}: status {d.actual!r} -> {d.expected!r}")
        if d.kind == DriftKind.TAG and d.version is not None:
            if d.expected is None:
                registry.delete_version_tag(d.version, d.key)
            else:  # the decision's whole group: who, when, why
                group = next(t for t in DECISION_TAGS.values() if d.key in t)
                values = decided.get(d.version, {})
                registry.set_version_tags(d.version, {k: values[k] for k in group if k in values})
            done.append(f"version {d.version}: {d.key} {d.actual!r} -> {d.expected!r}")
    order = {"champion": 0, "previous": 1, "challenger": 2}
    for d in sorted((d for d in problems if d.kind == DriftKind.ALIAS), key=lambda d: order[d.key]):
        registry.set_alias(d.key, d.expected)
        done.append(f"@{d.key}: {d.actual} -> {d.expected}")
        if d.key == "champion":
            faults.point("sync.after_champion_alias")
    return done


def check(ctx: Context) -> list[VersionInfo]:
    """Raise IntegrityAlert if the registry disagrees with the log; else the versions it
    read (newest first). Reads only; if a state change is in flight (the release lock is
    held) it waits for it, then reads again."""
    versions = ctx.registry.versions()
    problems = compute_drift(ctx.log, versions)
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while problems and lock_held(ctx.store, ctx.model) and time.monotonic() < deadline:
        time.sleep(0.2)
        ctx.reread()
        versions = ctx.registry.versions()
        problems = compute_drift(ctx.log, versions)
    if problems:
        alert = IntegrityAlert(problems)
        notify.alert(ctx, alert)  # sent, never recorded: this is a read
        raise alert
    return versions


def check_locked(ctx: Context) -> None:
    """`check` for a caller that holds the release lock: nothing else can be in flight."""
    problems = drift(ctx)
    if problems:
        raise IntegrityAlert(problems)


def verify(ctx: Context) -> Verification:
    """`audit verify`: recompute the chain, then check that the registry matches what the
    log says (statuses, aliases, manifests, no version without an event)."""
    log = ctx.log
    problems = log.problems()
    problems += unknown_policies(ctx, log)
    if not problems:
        problems = [d.message() for d in drift(ctx)]
    return Verification(not problems, len(log.entries), problems)


def unknown_policies(ctx: Context, log: Log) -> list[str]:
    """Events made under a policy that is not a recorded version (a policy brought from the
    caller's shell), and recorded versions whose stored text no longer matches its hash."""
    problems = []
    known: set[str] = set()
    governed = False  # events before the first stored policy predate stored policies
    for e in log.events:
        if e.action == Action.POLICY_SET:
            known.add(e.policy_sha256)
            governed = True
        if governed and e.policy_sha256 not in known:
            problems.append(
                f"event {e.seq} ({e.action}): made under policy {e.policy_sha256[:12] or '?'}, "
                "which is not a recorded policy version (see: magenta-release policy history)"
            )
    recorded = policy_store.versions(log)
    for record in recorded:
        try:
            policy_store.read_text(ctx.store.client, record)
        except IntegrityViolation as exc:
            problems.append(str(exc))
    # The policy runs are a second record of every `policy set`: one the log does not name
    # had its event deleted (or its `policy set` was interrupted before the event).
    named = {r.run_id for r in recorded} | {
        str(e.details.get("run_id"))
        for e in log.events
        if e.action == Action.POLICY_PROPOSE  # a proposed change names its stored text too
    }
    for run_id, number in policy_store.stored_runs(ctx.store.client, ctx.model):
        if run_id not in named:
            problems.append(
                f"policy version {number} of {ctx.model} was stored (run {run_id}) but the "
                "log has no event for it: its event was deleted (restore from a backup), or "
                "its `policy set` was interrupted (delete that run)"
            )
    return problems
