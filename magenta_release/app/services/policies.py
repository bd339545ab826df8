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
from magenta_release.core.errors import BadInput, PolicyRefused, ReleaseError
from magenta_release.core.lifecycle import expected_state
from magenta_release.core.limits import MAX_REASON, check_text
from magenta_release.core.policy import Policy, load_policy
from magenta_release.core.states import Action
from magenta_release.io import policy_store
from magenta_release.io.lock import release_lock
from magenta_release.io.store import Store


@dataclass(frozen=True)
class PolicySet:
    record: policy_store.PolicyVersion
    changed: bool
    previous_sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "changed": self.changed, "previous": self.previous_sha256}


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
    """Store the policy file at `path` as the new version for the model it names."""
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
    _own_experiment(store, new)
    ctx = Context(store, name, by)
    actor = ctx.actor
    for _ in range(2):
        found = policy_store.versions(ctx.log)
        current = policy_store.policy_of(store.client, found[-1]) if found else None
        if current is not None:
            if not is_owner(current, actor):
                raise PolicyRefused(
                    f"{actor} is not one of the policy owners of {name!r} "
                    f"({', '.join(current.approval.policy_owners)}); ask one of them"
                )
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
            run_id = store.runs(new.model.experiment).record_document(
                policy_store.EXPERIMENT,
                f"{name} policy v{number}",
                {
                    keys.POLICY_MODEL: name,
                    keys.POLICY_VERSION: str(number),
                    keys.POLICY_SHA256: new.sha256,
                    keys.POLICY_SET_BY: actor,
                },
                policy_store.ARTIFACT,
                raw.decode("utf-8"),
            )
            champion = expected_state(log.events).champion
            event = ctx.record(
                policy_sha256=new.sha256,
                actor=actor,
                action=Action.POLICY_SET,
                version=None,
                status=None,
                champion_before=champion,
                champion_after=champion,
                reason=reason,
                details={
                    "run_id": run_id,
                    "policy_version": number,
                    # what the server's guard enforces, readable from the log alone
                    "policy_owners": [identity.normalise(o) for o in new.approval.policy_owners],
                    "approvers": [identity.normalise(a) for a in new.approval.approvers],
                    "four_eyes": new.approval.four_eyes,
                },
            )
        record = policy_store.PolicyVersion(
            name, number, new.sha256, run_id, actor, event.time, reason
        )
        return PolicySet(record, True, current.sha256 if current else None)
    raise PolicyRefused(f"the policy of {name!r} kept changing meanwhile; run `policy set` again")


def _own_experiment(store: Store, new: Policy) -> None:
    """Each model trains into an experiment of its own: `gc` and `runs` of one model must
    never see another model's runs."""
    for other in policy_store.governed_models(store.client):
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
