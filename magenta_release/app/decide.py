"""`approve`, `reject`, `rollback`: the decisions a person makes about a proposal.

Each one reads like the others: take the model's release lock, read the audit log (once:
nothing else can append while the lock is held), check the registry against it, check the
decision's rules (`core.decisions`), write the event first (it is the decision), then let the
registry follow it (`lifecycle.sync`), and announce it after the lock is released.

Two cases check first and read again under the lock: an interactive confirmation (the person
answers before the lock is taken), and a tracking server. In server mode the person's machine
checks, re-computes the gates of a proposal it approves (so gate results forged into the store
are caught by the second person), and asks the server's release authority, which runs the
`commit_*` half below (lock, check again, event, registry) inside the MLflow server with the
server's own store access: nobody else can write governed state there. A SQLite store's lock
writes nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import evaluation, lifecycle, models, notify
from magenta_release.core import decisions, faults, keys
from magenta_release.core.audit import Event
from magenta_release.core.errors import PolicyRefused, StoreUnreachable
from magenta_release.core.evidence import Evidence
from magenta_release.core.lifecycle import IntegrityAlert, State, last_champion_move
from magenta_release.core.limits import require_reason
from magenta_release.core.policy import NotifyEvent
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import Action, Status
from magenta_release.io.lock import release_lock
from magenta_release.io.model_files import Verified

Confirm = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Transition:
    action: str
    version: int
    status: str
    champion: int | None
    previous: int | None
    event: Event
    recorded: bool = True  # False: a rerun found this very decision already made

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "version": self.version,
            "status": self.status,
            "champion": self.champion,
            "previous": self.previous,
            "event": {"seq": self.event.seq, "hash": self.event.hash},
        }

    def to_wire(self) -> dict[str, Any]:
        """What the release authority answers: the whole event, and whether it is new."""
        return {**self.to_json(), "event": self.event.to_json(), "recorded": self.recorded}

    @classmethod
    def from_wire(cls, doc: dict[str, Any]) -> Transition:
        try:
            return cls(
                str(doc["action"]),
                int(doc["version"]),
                str(doc["status"]),
                doc["champion"],
                doc["previous"],
                Event(**doc["event"]),
                bool(doc.get("recorded", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreUnreachable(
                f"the release authority answered something that is not a decision ({exc})"
            ) from exc


def _number(v: VersionInfo | None) -> int | None:
    return v.version if v else None


@contextmanager
def _decision(ctx: Context, *, reread: bool) -> Iterator[State]:
    """Hold the release lock with the log read under it and the registry checked against it;
    yields the state the log implies. Residency is checked before anything but the lock is
    written (the lock names only a host and a process)."""
    with release_lock(ctx.store, ctx.model):
        if reread:
            ctx.reread()
        ctx.check_residency()
        try:
            lifecycle.check_locked(ctx)
        except IntegrityAlert as alert:
            notify.alert(ctx, alert)  # the same alert a read command sends
            raise
        yield lifecycle.state(ctx)


def _proposers(state: State, v: VersionInfo) -> tuple[str, ...]:
    """Every name recorded for the version's proposer: its first propose event (actor and
    authenticated user) and its tags."""
    first = state.proposals.get(v.version)
    names = (first.actor, first.mlflow_user) if first is not None else ()
    tagged = (v.tags.get(keys.PROPOSED_BY), v.tags.get(keys.PROPOSED_BY_MLFLOW_USER))
    return tuple(n for n in (*names, *tagged) if n)


def _already(ctx: Context, action: Action, version: int, actor: str) -> Transition | None:
    """The event of this very action by this actor if it is the latest champion move: a rerun
    after an interruption (or a double click) then reports it instead of failing."""
    events = ctx.log.events
    last = last_champion_move(events)
    if last and last.action == action and last.version == version and last.actor == actor:
        state = lifecycle.state(ctx)
        return Transition(
            action, version, Status.APPROVED, state.champion, state.previous, last, False
        )
    return None


def _require_permission(ctx: Context, actor: str, action: str, enough: tuple[str, ...]) -> None:
    """Before the write-ahead event: a decision the server would not let the actor carry out
    (moving and clearing aliases) is refused while nothing is written, never half-applied."""
    permission = ctx.store.model_permission(ctx.model)
    if permission is not None and permission not in enough:
        raise PolicyRefused(
            f"{actor} may {action} under the policy but has {permission} on {ctx.model} in "
            f"MLflow; moving its aliases needs {' or '.join(enough)}: ask an MLflow admin to "
            "grant it (nothing was written)"
        )


def approval_summary(ctx: Context, v: VersionInfo) -> dict[str, Any]:
    """What an approver sees before confirming (from the evidence recorded at proposal)."""
    doc = Evidence.of(v)
    return {
        "model": ctx.model,
        "version": v.version,
        "run_id": v.run_id,
        "proposed_by": v.tags.get(keys.PROPOSED_BY),
        "note": v.tags.get(keys.NOTE, ""),
        "champion": _number(ctx.registry.alias("champion")),
        "gates": [g.to_json() for g in doc.gates],
        "rescored": doc.rescored,
    }


def _check_approvable(ctx: Context, state: State, v: VersionInfo, actor: str) -> None:
    decisions.check_proposal_intact(v, state.proposals.get(v.version))
    decisions.check_approvable(ctx.policy, v, actor, state.champion, _proposers(state, v))


def _check_first(ctx: Context, confirm: Confirm | None) -> bool:
    """Whether to check before taking the lock (and read the log again under it)."""
    return confirm is not None or ctx.store.sqlite_path is None


def approve(
    ctx: Context, version: int | str, *, reason: str, confirm: Confirm | None = None
) -> Transition:
    """Make a pending version the champion (four eyes, hashes re-checked, gates re-computed,
    not stale)."""
    actor = ctx.actor
    require_reason(reason, "this version should be released")
    authority = ctx.authority
    first = _check_first(ctx, confirm)
    v: VersionInfo | None = None
    if first:
        ctx.check_residency()
        lifecycle.check(ctx)
        v = ctx.registry.version(version)
        if v.status == Status.APPROVED and (
            done := _already(ctx, Action.APPROVE, v.version, actor)
        ):
            return done
        _check_approvable(ctx, lifecycle.state(ctx), v, actor)
        if confirm is not None and not confirm(approval_summary(ctx, v)):
            raise PolicyRefused(
                f"version {v.version} not approved: confirmation declined (without a terminal, "
                "confirm with --yes)"
            )
    if authority is not None:
        assert v is not None  # a server is always checked first
        state = lifecycle.state(ctx)
        with tempfile.TemporaryDirectory(prefix="magenta-approve-") as tmp:
            recheck_gates(ctx, state, v, models.fetch(ctx, v, Path(tmp)))
        t = Transition.from_wire(
            authority.approve(ctx.model, v.version, reason=reason, champion=state.champion)
        )
    else:
        t = commit_approve(ctx, version, reason=reason, actor=actor, reread=first, recheck=True)
    if t.recorded:
        notify.announce(ctx, NotifyEvent.APPROVED, t.version, actor, champion_before=t.previous)
    return t


def commit_approve(
    ctx: Context,
    version: int | str,
    *,
    reason: str,
    actor: str,
    reread: bool,
    recheck: bool = False,
) -> Transition:
    """The approval itself, under the release lock: check again, verify the files (and with
    `recheck`, re-compute the gates on them), write the event, let the registry follow. The
    embedded store runs it in the approver's process; the server's release authority after
    the approver's machine re-computed the gates."""
    with (
        _decision(ctx, reread=reread) as state,
        tempfile.TemporaryDirectory(prefix="magenta-approve-") as tmp,
    ):
        v = ctx.registry.version(version)
        if v.status == Status.APPROVED and (
            done := _already(ctx, Action.APPROVE, v.version, actor)
        ):
            return done
        _check_approvable(ctx, state, v, actor)  # inside the lock: exactly one approval wins
        _require_permission(ctx, actor, "approve", ("MANAGE",))
        verified = models.fetch(ctx, v, Path(tmp) / "challenger")
        if recheck:
            recheck_gates(ctx, state, v, verified)
        old = state.champion
        # The event first: it is the decision; the registry (status, aliases, who approved)
        # follows it in `sync`, so a failed write leaves no tag saying otherwise.
        event = ctx.record(
            actor=actor,
            action=Action.APPROVE,
            version=v.version,
            status=Status.APPROVED,
            champion_before=old,
            champion_after=v.version,
            reason=reason,
            evidence_sha256=v.tags.get(keys.EVIDENCE_SHA256, ""),
            manifest_sha256=v.tags.get(keys.MANIFEST_SHA256, ""),
        )
        faults.point("approve.after_audit")
        lifecycle.sync(ctx)
    return Transition(Action.APPROVE, v.version, Status.APPROVED, v.version, old, event)


def recheck_gates(ctx: Context, state: State, v: VersionInfo, verified: Verified) -> None:
    """The approver's machine re-computes the gates of pending version `v` from its run's
    recorded inputs (the evaluation rows re-read and checked against their digests, both
    models scored) on `verified`, the very files that will be served, and refuses (exit 3)
    when they disagree with the evidence recorded at proposal: passing gate results written
    into the store for a model that fails them are caught by the second person."""
    decisions.check_proposal_intact(v, state.proposals.get(v.version))
    run = ctx.runs.get_run(v.run_id)
    champion = ctx.registry.version(state.champion) if state.champion is not None else None
    with tempfile.TemporaryDirectory(prefix="magenta-recheck-") as tmp:
        gates, facts = evaluation.evaluate(ctx, run, verified.folder, champion, Path(tmp))
    decisions.check_gates_agree(
        v.version, Evidence.of(v), gates, facts, ctx.policy.gates.metric_tolerance
    )


def reject(ctx: Context, version: int | str, *, reason: str) -> Transition:
    """Turn down a pending proposal (an approver, or its proposer withdrawing it)."""
    actor = ctx.actor
    require_reason(reason, "this version is rejected")
    authority = ctx.authority
    first = _check_first(ctx, None)
    if first:
        ctx.check_residency()
        lifecycle.check(ctx)
        v = ctx.registry.version(version)
        decisions.check_rejectable(ctx.policy, v, actor, _proposers(lifecycle.state(ctx), v))
    if authority is not None:
        t = Transition.from_wire(authority.reject(ctx.model, int(version), reason=reason))
    else:
        t = commit_reject(ctx, version, reason=reason, actor=actor, reread=first)
    notify.announce(ctx, NotifyEvent.REJECTED, t.version, actor)
    return t


def commit_reject(
    ctx: Context, version: int | str, *, reason: str, actor: str, reread: bool
) -> Transition:
    """The rejection itself, under the release lock."""
    with _decision(ctx, reread=reread) as state:
        v = ctx.registry.version(version)
        decisions.check_rejectable(ctx.policy, v, actor, _proposers(state, v))
        _require_permission(ctx, actor, "reject", ("MANAGE",))
        champion = state.champion
        event = ctx.record(
            actor=actor,
            action=Action.REJECT,
            version=v.version,
            status=Status.REJECTED,
            champion_before=champion,
            champion_after=champion,
            reason=reason,
            evidence_sha256=v.tags.get(keys.EVIDENCE_SHA256, ""),
            manifest_sha256=v.tags.get(keys.MANIFEST_SHA256, ""),
        )
        lifecycle.sync(ctx)
        previous = lifecycle.state(ctx).previous
    return Transition(Action.REJECT, v.version, Status.REJECTED, champion, previous, event)


def _rollback_target(ctx: Context, state: State, to: int | str | None) -> VersionInfo:
    """The version a rollback moves @champion to: @previous, or `--to` a version the log
    approved once."""
    target = None
    if to is not None:
        target = ctx.registry.version(to)
    elif state.previous is not None:
        target = ctx.registry.version(state.previous)
    # approved by an approve event: a rollback event approves nothing
    approved = {e.version for e in ctx.log.events if e.action == Action.APPROVE and e.version}
    decisions.check_rollback_target(state.champion, target, approved)
    assert target is not None
    return target


def rollback(
    ctx: Context, *, reason: str, to: int | str | None = None, confirm: Confirm | None = None
) -> Transition:
    """Move @champion back to @previous (or to a version that was approved once)."""
    actor = ctx.actor
    require_reason(reason, "the champion is rolled back")
    authority = ctx.authority
    asked: tuple[int | None, int] | None = None
    first = _check_first(ctx, confirm)
    if first:
        ctx.check_residency()
        lifecycle.check(ctx)
        decisions.require_approver(ctx.policy.approval, ctx.model, actor, "roll back")
        state = lifecycle.state(ctx)
        if state.champion is not None and (to is None or str(to) == str(state.champion)):
            done = _already(ctx, Action.ROLLBACK, state.champion, actor)
            if done is not None:  # a rerun of the rollback that already happened
                return done
        target = _rollback_target(ctx, state, to)
        asked = (state.champion, target.version)
        shown = {"model": ctx.model, "champion": state.champion, "target": target.version}
        if confirm is not None and not confirm(shown):
            raise PolicyRefused(
                "rollback not done: confirmation declined (without a terminal, confirm with --yes)"
            )
    if authority is not None and asked is not None:
        t = Transition.from_wire(
            authority.rollback(ctx.model, to=asked[1], reason=reason, champion=asked[0])
        )
    else:
        t = commit_rollback(ctx, reason=reason, to=to, actor=actor, reread=first, asked=asked)
    if t.recorded:
        notify.announce(ctx, NotifyEvent.ROLLED_BACK, t.version, actor, champion_before=t.previous)
    return t


def commit_rollback(
    ctx: Context,
    *,
    reason: str,
    to: int | str | None,
    actor: str,
    reread: bool,
    asked: tuple[int | None, int] | None = None,
) -> Transition:
    """The rollback itself, under the release lock; `asked`: the (champion, target) the person
    confirmed, refused if either changed meanwhile."""
    with (
        _decision(ctx, reread=reread) as state,
        tempfile.TemporaryDirectory(prefix="magenta-rollback-") as tmp,
    ):
        decisions.require_approver(ctx.policy.approval, ctx.model, actor, "roll back")
        if state.champion is not None and (to is None or str(to) == str(state.champion)):
            done = _already(ctx, Action.ROLLBACK, state.champion, actor)
            if done is not None:  # a rerun of the rollback that already happened
                return done
        target = _rollback_target(ctx, state, to)
        if asked is not None and asked != (state.champion, target.version):
            raise PolicyRefused(
                f"the champion changed to {state.champion} meanwhile; "
                "check `magenta-release status` and roll back again"
            )
        models.fetch(ctx, target, Path(tmp))
        _require_permission(ctx, actor, "roll back", ("EDIT", "MANAGE"))
        champion = state.champion
        event = ctx.record(
            actor=actor,
            action=Action.ROLLBACK,
            version=target.version,
            status=Status.APPROVED,
            champion_before=champion,
            champion_after=target.version,
            reason=reason,
            evidence_sha256=target.tags.get(keys.EVIDENCE_SHA256, ""),
            manifest_sha256=target.tags.get(keys.MANIFEST_SHA256, ""),
        )
        faults.point("rollback.after_audit")
        lifecycle.sync(ctx)
    return Transition(
        Action.ROLLBACK, target.version, Status.APPROVED, target.version, champion, event
    )
