"""State replay: hand-written audit logs replayed into statuses and aliases."""

from __future__ import annotations

from magenta_release.core.audit import Event
from magenta_release.core.lifecycle import expected_state
from magenta_release.core.states import Status
from tests.conftest import ALICE, BOB, CAROL


def _event(
    seq: int,
    action: str,
    version: int | None,
    status: str | None,
    before: int | None,
    after: int | None,
    actor: str = ALICE,
) -> Event:
    return Event(
        seq=seq,
        time="2026-01-01T00:00:00+00:00",
        actor=actor,
        action=action,
        version=version,
        status=status,
        champion_before=before,
        champion_after=after,
        reason="r",
        evidence_sha256="e",
        manifest_sha256=f"m{version}",
        policy_sha256="p",
    )


def _log(*steps: tuple[str, int | None, str | None, int | None, int | None]) -> list[Event]:
    return [_event(i, *step) for i, step in enumerate(steps, start=1)]


PROPOSE_1 = ("propose", 1, Status.PENDING, None, None)
APPROVE_1 = ("approve", 1, Status.APPROVED, None, 1)
PROPOSE_2 = ("propose", 2, Status.PENDING, 1, 1)
APPROVE_2 = ("approve", 2, Status.APPROVED, 1, 2)


def test_empty_log_is_an_empty_registry() -> None:
    state = expected_state([])
    assert (state.status, state.champion, state.previous, state.challenger) == (
        {},
        None,
        None,
        None,
    )


def test_propose_makes_a_challenger_with_its_manifest() -> None:
    state = expected_state(_log(PROPOSE_1))
    assert state.status == {1: Status.PENDING}
    assert (state.champion, state.previous, state.challenger) == (None, None, 1)
    assert state.manifests == {1: "m1"}


def test_failed_gates_are_no_challenger() -> None:
    state = expected_state(_log(("propose", 1, Status.FAILED, None, None)))
    assert state.status == {1: Status.FAILED}
    assert state.challenger is None


def test_first_approval_has_no_previous() -> None:
    state = expected_state(_log(PROPOSE_1, APPROVE_1))
    assert state.status == {1: Status.APPROVED}
    assert (state.champion, state.previous, state.challenger) == (1, None, None)


def test_second_approval_retires_the_champion_into_previous() -> None:
    state = expected_state(_log(PROPOSE_1, APPROVE_1, PROPOSE_2))
    assert (state.champion, state.challenger) == (1, 2)
    state = expected_state(_log(PROPOSE_1, APPROVE_1, PROPOSE_2, APPROVE_2))
    assert state.status == {1: Status.RETIRED, 2: Status.APPROVED}
    assert (state.champion, state.previous, state.challenger) == (2, 1, None)


def test_reject_clears_the_challenger_and_keeps_the_champion() -> None:
    log = _log(PROPOSE_1, APPROVE_1, PROPOSE_2, ("reject", 2, Status.REJECTED, 1, 1))
    state = expected_state(log)
    assert state.status == {1: Status.APPROVED, 2: Status.REJECTED}
    assert (state.champion, state.previous, state.challenger) == (1, None, None)


def test_reject_of_an_older_proposal_keeps_the_newer_challenger() -> None:
    log = _log(
        PROPOSE_1,
        ("propose", 2, Status.PENDING, None, None),
        ("reject", 1, Status.REJECTED, None, None),
    )
    state = expected_state(log)
    assert state.challenger == 2
    assert state.status == {1: Status.REJECTED, 2: Status.PENDING}


def test_rollback_makes_previous_the_replaced_champion() -> None:
    log = _log(PROPOSE_1, APPROVE_1, PROPOSE_2, APPROVE_2, ("rollback", 1, Status.APPROVED, 2, 1))
    state = expected_state(log)
    assert state.status == {1: Status.APPROVED, 2: Status.ROLLED_BACK}
    assert (state.champion, state.previous) == (1, 2)
    # a second rollback rolls forward again
    log.append(_event(6, "rollback", 2, Status.APPROVED, 1, 2))
    state = expected_state(log)
    assert state.status == {1: Status.ROLLED_BACK, 2: Status.APPROVED}
    assert (state.champion, state.previous) == (2, 1)


def test_approval_after_a_rollback_retires_the_restored_champion() -> None:
    log = _log(
        PROPOSE_1,
        APPROVE_1,
        PROPOSE_2,
        APPROVE_2,
        ("rollback", 1, Status.APPROVED, 2, 1),
        ("propose", 3, Status.PENDING, 1, 1),
        ("approve", 3, Status.APPROVED, 1, 3),
    )
    state = expected_state(log)
    assert state.status == {1: Status.RETIRED, 2: Status.ROLLED_BACK, 3: Status.APPROVED}
    assert (state.champion, state.previous, state.challenger) == (3, 1, None)


def test_repair_events_are_ignored() -> None:
    log = _log(PROPOSE_1, APPROVE_1, PROPOSE_2)
    repaired = [
        *log,
        _event(4, "repair", None, None, 1, 1, actor=BOB),
        _event(5, "repair", 2, Status.REJECTED, 1, None, actor=CAROL),  # even a malformed one
    ]
    assert expected_state(repaired) == expected_state(log)
