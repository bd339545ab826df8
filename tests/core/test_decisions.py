"""The release decisions as pure rules: who may approve, reject or roll back what, checked on
plain values (a version's tags, the policy, the log's first propose event) without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from magenta_release.core import decisions, keys
from magenta_release.core.audit import Event
from magenta_release.core.errors import IntegrityViolation, PolicyRefused
from magenta_release.core.evidence import Evidence
from magenta_release.core.gates import Gate
from magenta_release.core.policy import Policy
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import Status

POLICY = Policy.model_validate(
    {
        "approval": {"approvers": ["alice", "bob"], "policy_owners": ["alice"], "four_eyes": True},
        "sha256": "a" * 64,
    }
)
OLDER = POLICY.model_copy(update={"sha256": "b" * 64})


def _version(
    number: int = 2,
    status: str = Status.PENDING,
    *,
    passed: bool = True,
    champion: int | None = 1,
    age_days: float = 1,
    policy: Policy = POLICY,
) -> VersionInfo:
    evidence = Evidence("run", (Gate("g", passed, "d"),), {}, champion, policy.sha256, "m")
    proposed = datetime.now(UTC) - timedelta(days=age_days)
    return VersionInfo(
        number,
        "run",
        "runs:/run/model",
        status,
        (),
        {
            keys.STATUS: status,
            keys.PROPOSED_BY: "carol",
            keys.PROPOSED_AT: proposed.isoformat(timespec="seconds"),
            keys.BASELINE_VERSION: str(champion or "none"),
            keys.PASSED_GATES: str(passed).lower(),
            keys.EVIDENCE: evidence.dumps(),
            keys.EVIDENCE_SHA256: evidence.sha256,
        },
    )


def _proposed(v: VersionInfo, status: str = Status.PENDING) -> Event:
    return Event(
        seq=2,
        time="t",
        actor="carol",
        action="propose",
        version=v.version,
        status=status,
        champion_before=1,
        champion_after=1,
        reason="",
        evidence_sha256=v.tags[keys.EVIDENCE_SHA256],
        manifest_sha256="m",
        policy_sha256=POLICY.sha256,
    ).sealed()


def test_an_approver_who_did_not_propose_may_approve_a_fresh_pending_version() -> None:
    decisions.check_approvable(POLICY, _version(), "bob", 1, ("carol",))


@pytest.mark.parametrize(
    ("actor", "version", "champion", "proposers", "why"),
    [
        ("bob", _version(status=Status.FAILED, passed=False), 1, ("carol",), "gates_failed"),
        ("carol", _version(), 1, ("carol",), "not in `approvers`"),
        ("alice", _version(), 1, ("Alice ",), "four eyes"),  # names compared as people
        ("bob", _version(), 3, ("carol",), "stale"),
        ("bob", _version(age_days=30), 1, ("carol",), "expired"),
        ("bob", _version(policy=OLDER), 1, ("carol",), "policy changed"),
    ],
)
def test_approval_is_refused_with_the_reason(
    actor: str, version: VersionInfo, champion: int, proposers: tuple[str, ...], why: str
) -> None:
    with pytest.raises(PolicyRefused, match=why):
        decisions.check_approvable(POLICY, version, actor, champion, proposers)


def test_a_proposal_is_intact_when_its_tags_are_what_the_event_hashed() -> None:
    v = _version()
    decisions.check_proposal_intact(v, _proposed(v))


def test_edited_evidence_or_outcome_is_an_integrity_violation() -> None:
    failed = _version(status=Status.FAILED, passed=False)
    event = _proposed(failed, Status.FAILED)
    # the proposer rewrites evidence, its hash and passed_gates to look approvable
    forged = _version(status=Status.PENDING, passed=True)
    with pytest.raises(IntegrityViolation, match="evidence is not what"):
        decisions.check_proposal_intact(forged, event)
    # the evidence left alone, only passed_gates flipped
    flipped = VersionInfo(**{**failed.__dict__, "tags": {**failed.tags, keys.PASSED_GATES: "true"}})
    with pytest.raises(IntegrityViolation, match="gate outcome"):
        decisions.check_proposal_intact(flipped, event)
    with pytest.raises(IntegrityViolation, match="no propose event"):
        decisions.check_proposal_intact(failed, None)


def test_reject_is_for_an_approver_or_the_proposer() -> None:
    decisions.check_rejectable(POLICY, _version(), "alice", ("carol",))
    decisions.check_rejectable(POLICY, _version(), "carol", ("carol",))
    with pytest.raises(PolicyRefused, match="only an approver or its proposer"):
        decisions.check_rejectable(POLICY, _version(), "mallory", ("carol",))


def test_rollback_goes_only_to_a_version_the_log_approved() -> None:
    retired = _version(1, Status.RETIRED)
    decisions.check_rollback_target(2, retired, approved={1, 2})
    with pytest.raises(PolicyRefused, match="approved once"):
        decisions.check_rollback_target(2, retired, approved={2})  # tags say retired; log no
    with pytest.raises(PolicyRefused, match="approved once"):
        decisions.check_rollback_target(2, _version(3, Status.FAILED, passed=False), {1, 2, 3})
    with pytest.raises(PolicyRefused, match="already the champion"):
        decisions.check_rollback_target(1, retired, approved={1})
    with pytest.raises(PolicyRefused, match="no @champion"):
        decisions.check_rollback_target(None, retired, approved={1})


def test_an_unreadable_proposal_time_counts_as_expired() -> None:
    v = _version()
    broken = VersionInfo(**{**v.__dict__, "tags": {**v.tags, keys.PROPOSED_AT: "yesterday"}})
    assert decisions.proposal_age_days(broken) is None
    assert decisions.expired(POLICY.approval, None)
