"""The release decisions as pure rules over plain values: may this person approve, reject or
roll back this version now? Each rule raises `PolicyRefused` (exit 1) with the reason and the
way forward, or returns. The use cases (`app.decide`) call them before and again inside the
release lock; the server's release authority calls the same ones before it writes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from magenta_release.core import identity, keys
from magenta_release.core.audit import Event
from magenta_release.core.errors import IntegrityViolation, PolicyRefused
from magenta_release.core.evidence import Evidence
from magenta_release.core.gates import Gate
from magenta_release.core.integrity import sha256_text
from magenta_release.core.policy import ApprovalSection, Policy
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import SERVABLE, Status


def same_person(a: str | None, b: str | None) -> bool:
    return bool(a and b) and identity.same(str(a), str(b))


def is_approver(approval: ApprovalSection, actor: str) -> bool:
    return any(identity.same(actor, a) for a in approval.approvers)


def require_approver(approval: ApprovalSection, model: str, actor: str, action: str) -> None:
    if not is_approver(approval, actor):
        raise PolicyRefused(
            f"{actor} may not {action}: not in `approvers` under [approval] of the release "
            f"policy of {model} ({', '.join(approval.approvers)}); ask one of them, or have a "
            "policy owner add the person (magenta-release policy set)"
        )


def proposal_age_days(v: VersionInfo, now: datetime | None = None) -> float | None:
    """Days since the version was proposed (None if its `release.proposed_at` is unreadable)."""
    try:
        proposed = datetime.fromisoformat(v.tags.get(keys.PROPOSED_AT, ""))
    except ValueError:
        return None
    if proposed.tzinfo is None:
        return None
    return ((now or datetime.now(UTC)) - proposed).total_seconds() / 86400


def expired(approval: ApprovalSection, age: float | None) -> bool:
    # An unreadable age cannot prove the evidence is fresh: treat it as expired.
    return age is None or age >= approval.expires_after_days


def check_not_expired(approval: ApprovalSection, model: str, v: VersionInfo) -> None:
    age = proposal_age_days(v)
    if expired(approval, age):
        limit = approval.expires_after_days
        when = "at an unreadable time" if age is None else f"{age:.1f} days ago"
        raise PolicyRefused(
            f"version {v.version} was proposed {when} and expired after {limit:g} days "
            f"(`expires_after_days` under [approval] of the policy of {model}); "
            f"reject it (magenta-release reject {v.version} --reason expired), then propose its "
            "run again"
        )


def check_approvable(
    policy: Policy, v: VersionInfo, actor: str, champion: int | None, proposers: tuple[str, ...]
) -> None:
    """`actor` may approve `v` now: it is pending, fresh, proposed under the policy in force
    against today's champion, and `actor` is an approver who did not propose it (four eyes).
    `proposers`: every name the log records for its proposer."""
    model = policy.registered_name
    if v.status != Status.PENDING:
        raise PolicyRefused(
            f"version {v.version} is {v.status or 'not proposed'}; only "
            f"{Status.PENDING} versions can be approved (see: magenta-release history)"
        )
    check_not_expired(policy.approval, model, v)
    require_approver(policy.approval, model, actor, "approve")
    if policy.approval.four_eyes and any(same_person(actor, p) for p in proposers):
        raise PolicyRefused(
            f"{actor} proposed version {v.version} and cannot approve it too "
            "(four eyes); ask another approver"
        )
    baseline = v.tags.get(keys.BASELINE_VERSION, "none")
    if str(champion or "none") != baseline:
        raise PolicyRefused(
            f"version {v.version} was compared against champion {baseline}, but the champion is "
            f"now {champion}; the proposal is stale — reject it "
            f"(magenta-release reject {v.version} --reason stale), then propose its run again"
        )
    proposed_under = Evidence.of(v).policy_sha256
    if proposed_under != policy.sha256:
        raise PolicyRefused(
            f"version {v.version} was proposed under policy {proposed_under[:12] or '?'}, but "
            f"the policy of {model} is now {policy.sha256[:12]} (magenta-release "
            f"policy history); re-propose: reject it (magenta-release reject {v.version} "
            "--reason 'policy changed'), then propose its run again"
        )


def check_rejectable(
    policy: Policy, v: VersionInfo, actor: str, proposers: tuple[str, ...]
) -> None:
    """An approver, or its proposer withdrawing it, may reject a pending version."""
    if v.status != Status.PENDING:
        raise PolicyRefused(
            f"version {v.version} is {v.status or 'not proposed'}; only "
            f"{Status.PENDING} versions can be rejected"
        )
    if not is_approver(policy.approval, actor) and not any(
        same_person(actor, p) for p in proposers
    ):
        raise PolicyRefused(
            f"{actor} may not reject version {v.version}: only an approver or its proposer can"
        )


def check_rollback_target(
    champion: int | None, target: VersionInfo | None, approved: set[int]
) -> None:
    """A rollback moves @champion to a version the log approved once (`approved`: every
    version an approve event made champion), never to the champion itself."""
    if champion is None:
        raise PolicyRefused("there is no @champion to roll back")
    if target is None:
        raise PolicyRefused(
            "no @previous version to roll back to; name one that was approved once "
            "with --to VERSION (see: magenta-release status)"
        )
    if target.version == champion:
        raise PolicyRefused(f"version {target.version} is already the champion")
    if (
        target.version not in approved
        or target.tags.get(keys.PASSED_GATES) != "true"
        or target.status not in SERVABLE
    ):
        raise PolicyRefused(
            f"version {target.version} is {target.status or 'not proposed'}; roll back only to "
            "a version that passed its gates and was approved once (approved, retired or "
            "rolled_back)"
        )


def check_proposal_intact(v: VersionInfo, proposed: Event | None) -> None:
    """The version's release tags are what its first propose event recorded: the evidence
    is the text the event hashed, and its gate outcome is the event's (pending only when every
    gate passed). IntegrityViolation (exit 3) naming the first difference, else None."""
    where = f"version {v.version}"
    if proposed is None:
        raise IntegrityViolation(
            f"{where} has no propose event in the audit log; it was not proposed with "
            "magenta-release (see: magenta-release audit verify)"
        )
    text = v.tags.get(keys.EVIDENCE, "")
    if sha256_text(text) != proposed.evidence_sha256 or (
        v.tags.get(keys.EVIDENCE_SHA256) != proposed.evidence_sha256
    ):
        raise IntegrityViolation(
            f"{where}: its recorded evidence is not what the audit log's propose event "
            f"(event {proposed.seq}) hashed: the gate results were edited; reject it and "
            "propose its run again"
        )
    evidence = Evidence.parse(text)
    passed = evidence is not None and evidence.passed
    if (
        passed != (proposed.status == Status.PENDING)
        or v.tags.get(keys.PASSED_GATES) != str(passed).lower()
    ):
        raise IntegrityViolation(
            f"{where}: its gate outcome ({v.tags.get(keys.PASSED_GATES)!r}) disagrees with "
            f"the evidence and the propose event ({proposed.status}); the tags were edited"
        )


# Appended by propose after the gates ran (the files' hashes, not a gate of the evaluation).
MANIFEST_GATE = "sha256_manifest"
# What the gates saw that must be the same on every machine: where the rows came from.
SAME_FACTS = ("source", "dataset_sha256", "eval_sha256")


def gates_disagreement(
    recorded: Evidence, gates: list[Gate], facts: dict[str, Any], tolerance: float
) -> str | None:
    """The first way the gates re-computed from a run's recorded inputs (`gates`, `facts`)
    differ from the evidence recorded at proposal, or None when they agree: the same gates
    with the same outcome, on rows from the same source, with the same recomputed metrics
    (within `tolerance`)."""
    was = {g.name: g.passed for g in recorded.gates if g.name != MANIFEST_GATE}
    now = {g.name: g.passed for g in gates if g.name != MANIFEST_GATE}
    if not was:
        return "the proposal records no gate results"
    for name in sorted(set(was) | set(now)):
        if name not in now:
            return f"gate {name} is recorded but the policy's gates do not produce it"
        if name not in was:
            return f"gate {name} is missing from the recorded results"
        if was[name] is not now[name]:
            shown = {True: "passes", False: "fails"}
            return (
                f"gate {name} {shown[now[name]]} here but is recorded as {shown[bool(was[name])]}"
            )
    for key in SAME_FACTS:
        if recorded.facts.get(key) != facts.get(key):
            here, then = facts.get(key), recorded.facts.get(key)
            return f"the evaluation {key} is {here!r} here, {then!r} recorded"
    then = recorded.metrics
    for name, value in sorted((facts.get("metrics") or {}).items()):
        old = then.get(name)
        if not _close(value, old, tolerance):
            return f"{name} is {value!r} here but {old!r} recorded"
    return None


def _close(a: object, b: object, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float):
        return a == b
    if not isinstance(b, int | float):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(tolerance, 1e-9) * max(1.0, abs(a))


def check_gates_agree(
    version: int, recorded: Evidence, gates: list[Gate], facts: dict[str, Any], tolerance: float
) -> None:
    """IntegrityViolation (exit 3) unless the re-computed gates agree with the evidence."""
    problem = gates_disagreement(recorded, gates, facts, tolerance)
    if problem is not None:
        raise IntegrityViolation(
            f"version {version}: the gates re-computed on this machine from the run's recorded "
            f"inputs disagree with the evidence recorded at proposal ({problem}); the recorded "
            f"results are not what its model and data give — do not approve it: reject it "
            f"(magenta-release reject {version} --reason ...) and propose its run again"
        )
