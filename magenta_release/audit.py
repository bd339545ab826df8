"""The release log: hash-chained events stored as tags of a registered model in the MLflow
store itself, so it is the same log against SQLite or a server. Each event carries the hash of
the one before; `verify` recomputes the chain and cross-checks the registry's current state
(the state machine that replays the log is `lifecycle`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from magenta_release import policy
from magenta_release.errors import IntegrityViolation
from magenta_release.store import Store, dumps

GENESIS = "0" * 64
EVENT_PREFIX = "event."
# The chain's head ("SEQ:HASH"), kept on the governed registered model itself: a second place
# that every append updates, so a deleted last event reads as tampering, not as an
# interrupted command.
HEAD_TAG = "magenta.audit_head"
LOG_DESCRIPTION = (
    "Release log of `{model}`, written by magenta-release: one hash-chained event per tag. "
    "Never edit it here; read it with `magenta-release history`, check it with "
    "`magenta-release audit verify`."
)


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
        data = asdict(self)
        data.pop("hash")
        return data

    def compute_hash(self) -> str:
        return hashlib.sha256(dumps(self.body()).encode("utf-8")).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


LOG_SUFFIX = policy.LOG_SUFFIX


def log_name(store: Store) -> str:
    return f"{store.name}{LOG_SUFFIX}"


def read(store: Store) -> list[tuple[str, str]]:
    """Raw (key, value) pairs of the log, in sequence order."""
    return entries(store.tags.model_tags(log_name(store)))


def events(store: Store) -> list[Event]:
    """Parsed events, oldest first; unparseable entries are skipped (verify reports them)."""
    return parse(read(store))


def parse(entries: list[tuple[str, str]]) -> list[Event]:
    """Events from (key, value) pairs, in order; malformed entries are skipped."""
    out = []
    for _, raw in entries:
        try:
            event = Event(**json.loads(raw))
        except (TypeError, ValueError):
            continue
        out.append(event)
    return out


def entries(tags: dict[str, str]) -> list[tuple[str, str]]:
    """The event tags of a log's registered-model tags, in sequence order."""
    return sorted((k, v) for k, v in tags.items() if k.startswith(EVENT_PREFIX))


def append(
    store: Store,
    *,
    actor: str,
    action: str,
    version: int | None,
    status: str | None,
    champion_before: int | None,
    champion_after: int | None,
    reason: str = "",
    evidence_sha256: str = "",
    manifest_sha256: str = "",
    details: dict[str, Any] | None = None,
) -> Event:
    """Append one event, then move the head to it. Call under the release lock, after
    `lifecycle.check_locked` (which verifies the chain): the sequence number is read, then set."""
    existing = read(store)
    prev_hash = GENESIS
    seq = len(existing) + 1
    if existing:
        try:
            prev_hash = str(Event(**json.loads(existing[-1][1])).hash)
        except (TypeError, ValueError):
            raise IntegrityViolation(
                f"the last entry of {log_name(store)} is not a valid event; nothing was "
                "written — run `magenta-release audit verify` and restore the store"
            ) from None
    draft = Event(
        seq=seq,
        time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        actor=actor,
        action=action,
        version=version,
        status=status,
        champion_before=champion_before,
        champion_after=champion_after,
        reason=reason,
        evidence_sha256=evidence_sha256,
        manifest_sha256=manifest_sha256,
        policy_sha256=store.policy.sha256,
        mlflow_user=store.whoami(),
        details=details or {},
        prev_hash=prev_hash,
    )
    event = Event(**{**draft.body(), "hash": draft.compute_hash()})
    store.tags.set_model_tag(
        log_name(store),
        f"{EVENT_PREFIX}{seq:08d}",
        dumps(event.to_json()),
        create=not existing,  # the first event creates the log's registered model
        description=LOG_DESCRIPTION.format(model=store.name),
    )
    store.tags.set_model_tag(store.name, HEAD_TAG, f"{seq}:{event.hash}", create=not existing)
    return event


def head(store: Store) -> tuple[int, str] | None:
    """The recorded head (seq, hash) of the log; None if none was recorded, (-1, raw) if
    what is recorded is not SEQ:HASH."""
    raw = store.tags.model_tags(store.name).get(HEAD_TAG)
    if raw is None:
        return None
    seq, sep, digest = raw.partition(":")
    if not sep or not seq.isdigit():
        return -1, raw[:40]
    return int(seq), digest


def verify_chain(store: Store) -> tuple[list[Event], list[str], int]:
    """Recompute the chain: the events that verify, the first problem found, how many
    entries the log holds. (`lifecycle.verify` adds the registry check.)"""
    problems: list[str] = []
    raw = read(store)
    parsed: list[Event] = []
    prev = GENESIS
    for i, (key, value) in enumerate(raw, start=1):
        try:
            event = Event(**json.loads(value))
        except (TypeError, ValueError):
            problems.append(f"event {key}: not a valid event record")
            break
        if event.seq != i or key != f"{EVENT_PREFIX}{i:08d}":
            problems.append(
                f"event {key}: sequence {event.seq} where {i} was expected "
                "(an event was removed or inserted)"
            )
            break
        if event.prev_hash != prev:
            problems.append(f"event {i}: prev_hash does not match event {i - 1}'s hash")
            break
        if event.compute_hash() != event.hash:
            problems.append(f"event {i}: its content does not match its hash (edited)")
            break
        parsed.append(event)
        prev = event.hash
    return parsed, problems, len(raw)
