"""Storing a new version of a model's policy: the one way a policy changes (`policy set`, and
`init` for a model's first one).

A local file is only the input: it is validated, the caller must be one of the current
policy's `policy_owners` (the server plugin enforces the same), the text is stored as a new
version (`io.policy_store`) and a `policy_set` event naming its SHA-256 is appended, under the
release lock. Every other command reads the stored version. Proposals made under an older
version cannot be approved (`core.decisions.check_approvable` compares the hash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import lifecycle
from magenta_release.core import identity, keys
from magenta_release.core.audit import Event, Log
from magenta_release.core.errors import BadInput, PolicyRefused, ReleaseError, StoreUnreachable
from magenta_release.core.lifecycle import expected_state
from magenta_release.core.limits import MAX_REASON, check_text
from magenta_release.core.policy import (
    Policy,
    check_not_look_alike,
    load_policy,
    policy_change_problem,
)
from magenta_release.core.states import Action
from magenta_release.io import policy_store
from magenta_release.io.lock import release_lock
from magenta_release.io.store import Store


@dataclass(frozen=True)
class PolicySet:
    record: policy_store.PolicyVersion
    changed: bool
    previous_sha256: str | None
    # a change proposed under four eyes, waiting for a second person (server mode)
    pending: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.record.to_json(),
            "changed": self.changed,
            "previous": self.previous_sha256,
            "pending": self.pending,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PolicySet:
        """What the release authority answered."""
        try:
            record = policy_store.PolicyVersion(
                str(doc["model"]),
                int(doc["version"]),
                str(doc["sha256"]),
                str(doc["run_id"]),
                str(doc["set_by"]),
                str(doc["set_at"]),
                str(doc["reason"]),
            )
            pending = doc.get("pending")
            return cls(
                record,
                bool(doc["changed"]),
                doc.get("previous"),
                pending if isinstance(pending, dict) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreUnreachable(
                f"the release authority answered something that is not a policy ({exc})"
            ) from exc


def is_owner(policy: Policy, actor: str) -> bool:
    return any(identity.same(actor, o) for o in policy.approval.policy_owners)


def set_policy(
    store: Store,
    path: Path,
    *,
    reason: str,
    by: str | None = None,
    model: str | None = None,
) -> PolicySet:
    """Store the policy file at `path` as the new version for the model it names (in server
    mode: ask the release authority to, which under four eyes needs a second person)."""
    check_text(reason, "--reason", MAX_REASON)
    if not reason.strip():
        raise BadInput("--reason is required: say why the policy changes")
    new = load_policy(path)
    name = new.registered_name
    if model and model != name:
        raise BadInput(
            f"{path} governs model {name!r} ([model] registered_name), not --model {model}; "
            "fix the file or the flag"
        )
    raw = path.read_bytes()
    ctx = Context(store, name, by)
    actor = ctx.actor
    authority = ctx.authority
    if authority is not None:
        # what only this machine can check: the tracking host it reaches is one the new policy
        # allows (the authority checks everything else)
        store.check_residency(new.residency, new.model.experiment)
        return PolicySet.from_json(
            authority.set_policy(name, text=raw.decode("utf-8"), reason=reason)
        )
    own_experiment(store, new)
    return commit_policy(ctx, raw, new, reason=reason, actor=actor, second_person=False)


def commit_policy(
    ctx: Context, raw: bytes, new: Policy, *, reason: str, actor: str, second_person: bool
) -> PolicySet:
    """Store `raw` (parsed: `new`) as the next policy version of `ctx.model`, under the
    release lock, if `actor` may: an owner of the policy in force (anyone for a model's
    first). With `second_person` (the server's release authority) and four eyes on in the
    policy in force, one owner's call proposes the change (a `policy_propose` event naming the
    stored text) and a second owner's or approver's call with the same text stores it."""
    store, name = ctx.store, ctx.model
    for _ in range(2):
        found = policy_store.versions(ctx.log)
        current = policy_store.policy_of(store.client, found[-1]) if found else None
        if current is not None:
            _may_ask(current, new, name, actor, second_person)  # before anything is written
            if current.sha256 == new.sha256:
                return PolicySet(found[-1], False, current.sha256)
            store.check_residency(current.residency, current.model.experiment)
        store.check_residency(new.residency, new.model.experiment)
        with release_lock(store, name):
            log = ctx.reread()
            if policy_store.versions(log) != found:
                continue  # another `policy set` landed meanwhile: decide again against it
            if log.entries:
                lifecycle.check_locked(ctx)
            number = len(found) + 1
            if current is not None and second_person and current.approval.four_eyes:
                pending = pending_change(log.events)
                if pending is None or pending.details.get("sha256") != new.sha256:
                    _require_owner(current, name, actor)
                    return _propose_change(ctx, raw, new, found, current, reason, actor)
                problem = policy_change_problem(current.approval, actor, pending.actor)
                if problem:
                    raise PolicyRefused(f"{problem} (policy of {name!r})")
                run_id = str(pending.details.get("run_id"))
                confirms: dict[str, Any] = {"proposed_by": pending.actor, "proposal": pending.seq}
            else:
                if current is not None:
                    _require_owner(current, name, actor)
                run_id, confirms = _store_text(ctx, raw, new, number, actor), {}
            event = _record_set(ctx, log, new, run_id, number, reason, actor, confirms)
        record = policy_store.PolicyVersion(
            name, number, new.sha256, run_id, actor, event.time, reason
        )
        return PolicySet(record, True, current.sha256 if current else None)
    raise PolicyRefused(f"the policy of {name!r} kept changing meanwhile; run `policy set` again")


def _may_ask(current: Policy, new: Policy, name: str, actor: str, second_person: bool) -> None:
    """An owner, or (confirming a change under four eyes) an approver; the full rule runs
    under the lock."""
    confirming = second_person and current.approval.four_eyes and current.sha256 != new.sha256
    if not (confirming and any(identity.same(actor, a) for a in current.approval.approvers)):
        _require_owner(current, name, actor)


def _require_owner(current: Policy, name: str, actor: str) -> None:
    if not is_owner(current, actor):
        raise PolicyRefused(
            f"{actor} is not one of the policy owners of {name!r} "
            f"({', '.join(current.approval.policy_owners)}); ask one of them"
        )


def pending_change(events: list[Event]) -> Event | None:
    """The policy change proposed since the last stored version, if any (the newest)."""
    pending = None
    for e in events:
        if e.action == Action.POLICY_PROPOSE:
            pending = e
        elif e.action == Action.POLICY_SET:
            pending = None
    return pending


def _store_text(ctx: Context, raw: bytes, new: Policy, number: int, actor: str) -> str:
    """The policy text as one run of the policies experiment; its run id."""
    return ctx.store.runs(new.model.experiment).record_document(
        policy_store.EXPERIMENT,
        f"{ctx.model} policy v{number}",
        {
            keys.POLICY_MODEL: ctx.model,
            keys.POLICY_VERSION: str(number),
            keys.POLICY_SHA256: new.sha256,
            keys.POLICY_SET_BY: actor,
        },
        policy_store.ARTIFACT,
        raw.decode("utf-8"),
    )


def _enforced(new: Policy) -> dict[str, Any]:
    """What a `policy_set` event says the policy enforces, readable from the log alone."""
    return {
        "policy_owners": [identity.normalise(o) for o in new.approval.policy_owners],
        "approvers": [identity.normalise(a) for a in new.approval.approvers],
        "four_eyes": new.approval.four_eyes,
    }


def _record_set(
    ctx: Context,
    log: Log,
    new: Policy,
    run_id: str,
    number: int,
    reason: str,
    actor: str,
    confirms: dict[str, Any],
) -> Event:
    champion = expected_state(log.events).champion
    return ctx.record(
        policy_sha256=new.sha256,
        actor=actor,
        action=Action.POLICY_SET,
        version=None,
        status=None,
        champion_before=champion,
        champion_after=champion,
        reason=reason,
        details={"run_id": run_id, "policy_version": number, **_enforced(new), **confirms},
    )


def _propose_change(
    ctx: Context,
    raw: bytes,
    new: Policy,
    found: list[policy_store.PolicyVersion],
    current: Policy,
    reason: str,
    actor: str,
) -> PolicySet:
    """Four eyes on the policy: store the text and a `policy_propose` event; the change is
    in force once a second person stores the same text."""
    run_id = _store_text(ctx, raw, new, len(found) + 1, actor)
    champion = expected_state(ctx.log.events).champion
    event = ctx.record(
        actor=actor,
        action=Action.POLICY_PROPOSE,
        version=None,
        status=None,
        champion_before=champion,
        champion_after=champion,
        reason=reason,
        details={"run_id": run_id, "sha256": new.sha256, **_enforced(new)},
    )
    pending = {
        "sha256": new.sha256,
        "proposed_by": actor,
        "event": event.seq,
        "run_id": run_id,
        "confirm_with": "a second policy owner or an approver runs `magenta-release policy "
        "set` with the same file",
    }
    return PolicySet(found[-1], False, current.sha256, pending)


def own_experiment(store: Store, new: Policy) -> None:
    """Each model trains into an experiment of its own: `gc` and `runs` of one model must
    never see another model's runs; and a new name never reads as a governed one."""
    governed = policy_store.governed_models(store.client)
    check_not_look_alike(new.registered_name, governed)
    for other in governed:
        if other == new.registered_name:
            continue
        try:
            theirs = Context(store, other).policy
        except ReleaseError:
            continue  # that model's own problem; `audit verify` reports it
        if theirs.model.experiment == new.model.experiment:
            raise BadInput(
                f"experiment {new.model.experiment!r} holds the runs of model {other!r}; give "
                f"[model] experiment a name of its own for {new.registered_name!r}"
            )
