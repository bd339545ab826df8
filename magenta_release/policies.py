"""`policy set`, `policy show`, `policy history`: the one way a model's policy changes.

A local file is only the input: `set` validates it, checks the caller is one of the current
policy's `policy_owners` (the server plugin enforces the same), stores the text as a new version
(`policy_store`) and appends a `policy_set` event naming its SHA-256, under the release lock.
Every other command reads the stored version. Proposals made under an older version cannot be
approved (`release.approve` compares the hash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magenta_release import audit, identity, lifecycle, policy_store
from magenta_release.errors import BadInput, PolicyRefused, ReleaseError
from magenta_release.lock import release_lock
from magenta_release.policy import Policy, load_policy
from magenta_release.release import MAX_REASON, check_text
from magenta_release.settings import Settings
from magenta_release.store import Store


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
    settings: Settings,
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
    client = Store.connect(settings)
    _own_experiment(client, new)
    target = Store(settings, new, client)
    actor = target.actor(by)
    for _ in range(2):
        found = policy_store.versions(policy_store.log_events(client, name), name)
        current = policy_store.policy_of(client, found[-1]) if found else None
        if current is not None:
            if not is_owner(current, actor):
                raise PolicyRefused(
                    f"{actor} is not one of the policy owners of {name!r} "
                    f"({', '.join(current.approval.policy_owners)}); ask one of them"
                )
            if current.sha256 == new.sha256:
                return PolicySet(found[-1], False, current.sha256)
            Store(settings, current, client).check_residency()
        target.check_residency()
        with release_lock(target):
            log = audit.events(target)
            if policy_store.versions(log, name) != found:
                continue  # another `policy set` landed meanwhile: decide again against it
            if log:
                lifecycle.check_locked(target)
            number = len(found) + 1
            run_id = target.runs.record_document(
                policy_store.EXPERIMENT,
                f"{name} policy v{number}",
                {
                    "magenta.policy.model": name,
                    "magenta.policy.version": str(number),
                    "magenta.policy.sha256": new.sha256,
                    "magenta.policy.set_by": actor,
                },
                policy_store.ARTIFACT,
                raw.decode("utf-8"),
            )
            champion = lifecycle.expected_state(log).champion
            event = audit.append(
                target,
                actor=actor,
                action=policy_store.SET_ACTION,
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


def _own_experiment(client: Any, new: Policy) -> None:
    """Each model trains into an experiment of its own: `gc` and `runs` of one model must
    never see another model's runs."""
    for other in policy_store.governed_models(client):
        if other == new.registered_name:
            continue
        try:
            theirs = policy_store.current(client, other)
        except ReleaseError:
            continue  # that model's own problem; `audit verify` reports it
        if theirs.model.experiment == new.model.experiment:
            raise BadInput(
                f"experiment {new.model.experiment!r} holds the runs of model {other!r}; give "
                f"[model] experiment a name of its own for {new.registered_name!r}"
            )


def show(store: Store) -> tuple[policy_store.PolicyVersion, str]:
    """The policy in force and its exact text (what `policy set` stored)."""
    record = policy_store.current_version(store.client, store.name)
    return record, policy_store.read_text(store.client, record).decode("utf-8")


def history(store: Store) -> list[policy_store.PolicyVersion]:
    """Every stored version of the model's policy, newest first."""
    return list(reversed(policy_store.versions(audit.events(store), store.name)))
