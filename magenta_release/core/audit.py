"""The audit event and its chain, as pure values: each event carries the hash of the one
before, and the model's recorded head ("SEQ:HASH") names the last one. `Log` is a model's log
as one command read it: parsed and verified once, then carried (and extended by the events the
command appends) instead of being read again. Storage is `io.audit_log`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any

from magenta_release.core import keys
from magenta_release.core.policy import LOG_SUFFIX
from magenta_release.core.states import Action

GENESIS = "0" * 64
EVENT_PREFIX = "event."
# The chain's head ("SEQ:HASH"), kept on the governed registered model itself: a second place
# that every append updates, so a deleted last event reads as tampering, not as an
# interrupted command.
HEAD_TAG = keys.AUDIT_HEAD

__all__ = [
    "EVENT_PREFIX",
    "GENESIS",
    "HEAD_TAG",
    "LOG_SUFFIX",
    "Event",
    "Log",
    "Verification",
    "dumps",
    "event_key",
    "log_name",
]


def dumps(data: Any) -> str:
    """Canonical JSON: the form that hashes are taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def log_name(model: str) -> str:
    """The registered model that holds `model`'s audit log."""
    return f"{model}{LOG_SUFFIX}"


def event_key(seq: int) -> str:
    return f"{EVENT_PREFIX}{seq:08d}"


@dataclass(frozen=True)
class Event:
    seq: int
    time: str
    actor: str
    action: str
    version: int | None
    status: str | None
    champion_before: int | None
    champion_after: int | None
    reason: str
    evidence_sha256: str
    manifest_sha256: str
    policy_sha256: str
    mlflow_user: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """The hashed fields. A shallow dict: its canonical JSON is `asdict`'s (which deep-copies
        every field, 60 % of verifying a 20,000-event log), tests/core/test_audit_body.py."""
        return {name: getattr(self, name) for name in _BODY}

    def compute_hash(self) -> str:
        return hashlib.sha256(dumps(self.body()).encode("utf-8")).hexdigest()

    def sealed(self) -> Event:
        """This event with its own hash filled in."""
        return replace(self, hash=self.compute_hash())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: str) -> Event | None:
        """The event a stored value holds, None if it is not one."""
        try:
            doc = json.loads(raw)
            event = cls(**doc) if isinstance(doc, dict) else None
        except (TypeError, ValueError):
            return None
        if event is None or not isinstance(event.seq, int) or not isinstance(event.action, str):
            return None
        return event


_BODY = tuple(f.name for f in fields(Event) if f.name != "hash")


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "problems": self.problems,
            "first_broken": self.problems[0] if self.problems else None,
        }


def parse_head(raw: str | None) -> tuple[int, str] | None:
    """The recorded head (seq, hash); None if none was recorded, (-1, raw) if what is
    recorded is not SEQ:HASH."""
    if raw is None:
        return None
    seq, sep, digest = raw.partition(":")
    if not sep or not seq.isdigit():
        return -1, raw[:40]
    return int(seq), digest


@dataclass(frozen=True)
class Log:
    """One model's audit log as read once: the stored (key, value) entries in sequence order
    and the head recorded on the model. Parsing and verification happen once, on first use."""

    model: str
    entries: tuple[tuple[str, str], ...]
    head: tuple[int, str] | None
    exists: bool = True  # whether the log's registered model exists at all

    @classmethod
    def from_tags(cls, model: str, log_tags: dict[str, str] | None, head_raw: str | None) -> Log:
        entries = tuple(
            sorted((k, v) for k, v in (log_tags or {}).items() if k.startswith(EVENT_PREFIX))
        )
        return cls(model, entries, parse_head(head_raw), log_tags is not None)

    @cached_property
    def _checked(self) -> tuple[tuple[Event, ...], tuple[str, ...]]:
        parsed: list[Event] = []
        prev = GENESIS
        for i, (key, value) in enumerate(self.entries, start=1):
            event = Event.from_json(value)
            if event is None:
                return tuple(parsed), (f"event {key}: not a valid event record",)
            if event.seq != i or key != event_key(i):
                return tuple(parsed), (
                    f"event {key}: sequence {event.seq} where {i} was expected "
                    "(an event was removed or inserted)",
                )
            if event.prev_hash != prev:
                return tuple(parsed), (f"event {i}: prev_hash does not match event {i - 1}'s hash",)
            if event.compute_hash() != event.hash:
                return tuple(parsed), (f"event {i}: its content does not match its hash (edited)",)
            parsed.append(event)
            prev = event.hash
        return tuple(parsed), ()

    @property
    def events(self) -> list[Event]:
        """The events that verify, oldest first (all of them when `chain_problems` is empty)."""
        return list(self._checked[0])

    @property
    def chain_problems(self) -> list[str]:
        """The first break in the chain, if any."""
        return list(self._checked[1])

    @property
    def name(self) -> str:
        return log_name(self.model)

    @property
    def last_hash(self) -> str:
        events = self._checked[0]
        return events[-1].hash if events else GENESIS

    @property
    def governed(self) -> bool:
        """Whether a policy was ever stored for the model (its log has a policy_set)."""
        return any(e.action == Action.POLICY_SET for e in self._checked[0])

    def next_event(self, **fields: Any) -> Event:
        """The sealed event that would come next in this log."""
        seq = len(self.entries) + 1
        return Event(seq=seq, prev_hash=self.last_hash, **fields).sealed()

    def appended(self, event: Event) -> Log:
        """This log with `event` appended and the head moved to it (what the store now holds)."""
        return Log(
            self.model,
            (*self.entries, (event_key(event.seq), dumps(event.to_json()))),
            (event.seq, event.hash),
            True,
        )

    def head_problems(self) -> list[str]:
        """A head beyond the log, naming another event, unreadable, or missing from a log this
        version of the tool wrote, is tampering. A head behind the log is an append interrupted
        between the event and the head (reported as drift)."""
        log = self.events
        if self.head is None:
            # Only a store from before heads were recorded, or a first append interrupted
            # before its head, has none; every log with a stored policy had one from event 1.
            return (
                ["its recorded head is missing: it was deleted"]
                if self.governed and len(log) > 1
                else []
            )
        seq, digest = self.head
        if seq < 0:
            return [f"its recorded head {digest!r} is not SEQ:HASH: it was edited"]
        if seq > len(log):
            return [
                f"its recorded head is event {seq}, but the log ends at event {len(log)}: "
                "events were deleted"
            ]
        if seq >= 1 and log[seq - 1].hash != digest:
            return [f"event {seq} is not the event its recorded head names: it was replaced"]
        return []

    def problems(self) -> list[str]:
        """Why this log cannot be trusted: a broken chain, else a tampered head."""
        return self.chain_problems or self.head_problems()

    def head_behind(self) -> bool:
        """An append was interrupted after its event, before its head (the next write mends it)."""
        log = self.events
        return bool(log) and self.head is not None and 0 <= self.head[0] < len(log)
