"""The audit event and its chain as pure values: a `Log` parsed and verified once, the next
event chained to the last, and every way a stored log can be broken named."""

from __future__ import annotations

import pytest

from magenta_release.core.audit import EVENT_PREFIX, GENESIS, Event, Log, dumps, event_key


def _log(*actions: str, model: str = "m") -> Log:
    log = Log.from_tags(model, {}, None)
    for action in actions:
        event = log.next_event(
            time="2026-01-01T00:00:00.000+00:00",
            actor="alice",
            action=action,
            version=1,
            status=None,
            champion_before=None,
            champion_after=None,
            reason="",
            evidence_sha256="",
            manifest_sha256="",
            policy_sha256="p",
        )
        log = log.appended(event)
    return log


def _tags(log: Log) -> dict[str, str]:
    return dict(log.entries)


def test_appended_events_chain_and_verify() -> None:
    log = _log("policy_set", "propose", "approve")
    events = log.events
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert log.problems() == []
    assert log.head == (3, events[-1].hash)
    # what the store holds reads back as the same log
    again = Log.from_tags("m", _tags(log), f"3:{events[-1].hash}")
    assert again.events == events and again.problems() == []


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("edit", "its content does not match its hash"),
        ("delete-middle", "sequence 3 where 2 was expected"),
        ("garbage", "not a valid event record"),
        ("rechain", "prev_hash does not match"),
    ],
)
def test_a_damaged_chain_names_the_first_break(damage: str, expected: str) -> None:
    log = _log("policy_set", "propose", "approve")
    tags = _tags(log)
    second = Event.from_json(tags[event_key(2)])
    assert second is not None
    if damage == "edit":
        tags[event_key(2)] = dumps({**second.to_json(), "actor": "mallory"})
    elif damage == "delete-middle":
        del tags[event_key(2)]
    elif damage == "garbage":
        tags[event_key(2)] = "{not json"
    else:  # a forged event, correctly hashed but chained to nothing
        forged = Event(**{**second.body(), "prev_hash": "f" * 64}).sealed()
        tags[event_key(2)] = dumps(forged.to_json())
    broken = Log.from_tags("m", tags, f"3:{log.events[-1].hash}")
    assert expected in broken.problems()[0]


def test_the_head_turns_a_deleted_last_event_into_tampering() -> None:
    log = _log("policy_set", "propose", "approve")
    tags = _tags(log)
    del tags[event_key(3)]
    broken = Log.from_tags("m", tags, f"3:{log.events[-1].hash}")
    assert broken.chain_problems == []  # the rest still chains
    assert "events were deleted" in broken.problems()[0]
    # a head behind the log is an interrupted append, not tampering
    behind = Log.from_tags("m", _tags(log), f"2:{log.events[1].hash}")
    assert behind.problems() == [] and behind.head_behind()


@pytest.mark.parametrize("raw", ["garbage", "x:y", "7"])
def test_an_unreadable_head_is_tampering(raw: str) -> None:
    log = _log("policy_set", "propose")
    assert Log.from_tags("m", _tags(log), raw).problems()


def test_only_event_tags_belong_to_the_chain() -> None:
    log = _log("policy_set")
    tags = {**_tags(log), "mlflow.note": "hello", f"{EVENT_PREFIX}x": "y"}
    found = Log.from_tags("m", tags, None)
    # "event.x" sorts after event.00000001 and is not a valid event: reported, not skipped
    assert found.entries[-1][0] == f"{EVENT_PREFIX}x"
    assert "not a valid event record" in found.problems()[0]
