"""The release state machine (docs/release-process.md) as pure rules: the audit log is the record of
every decision; `expected_state` replays it into where each alias and status must be, and
`drift` compares that with the registry's versions. What reads and writes the registry is
`app.services.lifecycle`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from magenta_release.core import keys
from magenta_release.core.audit import HEAD_TAG, Event, Log
from magenta_release.core.errors import IntegrityViolation
from magenta_release.core.integrity import manifest_digest
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import CHAMPION_MOVES, Action, Status


@dataclass(frozen=True)
class State:
    """What the log says the registry must look like."""

    status: dict[int, str]
    champion: int | None
    previous: int | None
    challenger: int | None
    manifests: dict[int, str]
    # who decided, from the log: written onto versions after the event, never before it
    decisions: dict[int, dict[str, str]] = field(default_factory=dict)
    # each version's first propose event: what was proposed (later ones are forgeries)
    proposals: dict[int, Event] = field(default_factory=dict)


class DriftKind(StrEnum):
    """What differs between the registry and the log."""

    STATUS = "status"  # a version's release.status
    ALIAS = "alias"  # @champion, @previous or @challenger
    ORPHAN = "orphan"  # a version with no propose event
    MANIFEST = "manifest"  # a version's manifest tags
    TAG = "tag"  # who decided (approved_by, rejected_by, rolled_back_by)
    HEAD = "head"  # the log's recorded head is behind the log


@dataclass(frozen=True)
class Drift:
    """One difference between the registry and the log."""

    kind: DriftKind
    version: int | None
    key: str
    expected: Any
    actual: Any

    def message(self) -> str:
        if self.kind == DriftKind.ORPHAN:
            return f"registry: version {self.version} has no event in the log"
        if self.kind == DriftKind.ALIAS:
            return (
                f"registry: @{self.key} is {self.actual} but the log says {self.expected} "
                "(moved outside magenta-release, or an interrupted command)"
            )
        if self.kind == DriftKind.HEAD:
            return (
                f"registry: the log's recorded head is {self.actual or 'missing'} but the log "
                f"ends at event {str(self.expected).split(':')[0]} (an interrupted command)"
            )
        if self.kind == DriftKind.TAG:
            return (
                f"registry: version {self.version} has {self.key}={self.actual!r} but the log "
                f"says {self.expected!r}"
            )
        if self.kind == DriftKind.MANIFEST:
            return (
                f"registry: version {self.version}'s manifest hash differs from the one "
                "recorded at proposal"
            )
        return (
            f"registry: version {self.version} has status {self.actual!r} but the log "
            f"says {self.expected!r}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "key": self.key,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message(),
        }


class LogBroken(IntegrityViolation):
    """The audit log itself does not verify (edited, deleted or garbage events): exit 3, and
    nothing repairs it — restore the store from a backup."""


class IntegrityAlert(IntegrityViolation):
    """The registry disagrees with the audit log (exit 3): an alias or status moved outside
    magenta-release, or a command was interrupted. Only `magenta-release repair` restores."""

    def __init__(self, problems: list[Drift]) -> None:
        self.problems = problems
        found = "; ".join(d.message().removeprefix("registry: ") for d in problems[:4])
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        super().__init__(
            f"integrity alert: {found}{more}; nothing was changed — find out who moved it "
            "(magenta-release history), then restore with "
            "`magenta-release repair --reason ...`"
        )


def verified(log: Log) -> list[Event]:
    """The log's events after checking the chain and its recorded head; LogBroken if not."""
    problems = log.problems()
    if problems:
        raise LogBroken(
            f"the audit log of {log.model} is broken: {problems[0]}; nothing was changed — "
            "see `magenta-release audit verify`, then restore the store from a backup"
        )
    return log.events


# The version tags each decision writes: (on which version, {tag: event field}).
DECISION_TAGS = {
    Action.APPROVE: {
        keys.APPROVED_BY: "actor",
        keys.APPROVED_AT: "time",
        keys.APPROVE_REASON: "reason",
    },
    Action.REJECT: {
        keys.REJECTED_BY: "actor",
        keys.REJECTED_AT: "time",
        keys.REJECT_REASON: "reason",
    },
    Action.ROLLBACK: {keys.ROLLED_BACK_BY: "actor", keys.ROLLED_BACK_AT: "time"},
}
WHO_TAGS = (keys.APPROVED_BY, keys.REJECTED_BY, keys.ROLLED_BACK_BY)


def _decide(decisions: dict[int, dict[str, str]], e: Event) -> None:
    written = DECISION_TAGS.get(e.action)  # type: ignore[call-overload]
    # a rollback marks the champion it replaced; approve and reject their own version
    on = e.champion_before if e.action == Action.ROLLBACK else e.version
    if written and on is not None and not (e.action == Action.ROLLBACK and on == e.champion_after):
        decisions.setdefault(on, {}).update({k: str(getattr(e, f)) for k, f in written.items()})


def _repeated_proposal(proposals: dict[int, Event], e: Event) -> bool:
    """A second propose event of a version: a version is proposed once, so it counts for
    nothing (its manifest, evidence and status are the first event's)."""
    return e.action == Action.PROPOSE and e.version in proposals


def expected_state(log: list[Event]) -> State:
    """Replay the log: each version's status and where each alias must point. Only the first
    propose event of a version counts: a version is proposed once."""
    status: dict[int, str] = {}
    manifests: dict[int, str] = {}
    proposals: dict[int, Event] = {}
    champion = previous = challenger = None
    decisions: dict[int, dict[str, str]] = {}
    for e in log:
        if e.action == Action.REPAIR or _repeated_proposal(proposals, e):
            continue
        if e.action == Action.PROPOSE and e.version is not None:
            proposals[e.version] = e
            manifests[e.version] = e.manifest_sha256
            if e.status == Status.PENDING:
                challenger = e.version
        _decide(decisions, e)
        if e.version is not None and e.status:
            status[e.version] = e.status
        if e.action in {Action.APPROVE, Action.REJECT} and challenger == e.version:
            challenger = None
        if e.action in CHAMPION_MOVES:
            if e.champion_before is not None and e.champion_before != e.champion_after:
                status[e.champion_before] = (
                    Status.RETIRED if e.action == Action.APPROVE else Status.ROLLED_BACK
                )
            if e.action == Action.APPROVE:
                previous = e.champion_before if e.champion_before is not None else previous
            else:  # the champion a rollback replaced: a second rollback rolls forward again
                previous = e.champion_before
            champion = e.champion_after
    return State(status, champion, previous, challenger, manifests, decisions, proposals)


def _manifest_tag_digest(version_tags: dict[str, str]) -> str | None:
    """The hash of the recorded manifest, recomputed from the manifest itself: both the
    manifest and its hash tag must agree with the log."""
    try:
        digest = manifest_digest(json.loads(version_tags.get(keys.MANIFEST, "")))
    except (TypeError, ValueError, AttributeError):
        return None
    return digest if digest == version_tags.get(keys.MANIFEST_SHA256) else None


def drift(log: Log, versions: list[VersionInfo]) -> list[Drift]:
    """Every difference between the registry's `versions` and the state `log` implies
    (LogBroken if the log itself does not verify)."""
    events = verified(log)
    state = expected_state(events)
    found: list[Drift] = []
    # No head yet (a store from before heads were recorded): the next append writes it.
    if log.head_behind():
        found.append(
            Drift(DriftKind.HEAD, None, HEAD_TAG, f"{len(events)}:{events[-1].hash}", log.head)
        )
    actual_alias = {a: v.version for v in versions for a in v.aliases}
    for alias, expected in (
        ("champion", state.champion),
        ("previous", state.previous),
        ("challenger", state.challenger),
    ):
        if actual_alias.get(alias) != expected:
            found.append(Drift(DriftKind.ALIAS, None, alias, expected, actual_alias.get(alias)))
    for v in versions:
        if v.version not in state.status:
            found.append(Drift(DriftKind.ORPHAN, v.version, "", None, v.status))
            continue
        if v.tags.get(keys.STATUS) != state.status[v.version]:
            found.append(
                Drift(
                    DriftKind.STATUS,
                    v.version,
                    keys.STATUS,
                    state.status[v.version],
                    v.tags.get(keys.STATUS),
                )
            )
        decided = state.decisions.get(v.version, {})
        for key in WHO_TAGS:
            if v.tags.get(key) != decided.get(key):
                found.append(
                    Drift(DriftKind.TAG, v.version, key, decided.get(key), v.tags.get(key))
                )
        if _manifest_tag_digest(v.tags) != state.manifests.get(v.version):
            found.append(
                Drift(
                    DriftKind.MANIFEST,
                    v.version,
                    keys.MANIFEST_SHA256,
                    state.manifests.get(v.version),
                    v.tags.get(keys.MANIFEST_SHA256),
                )
            )
    return found


def last_champion_move(log: list[Event]) -> Event | None:
    moves = [e for e in log if e.action in CHAMPION_MOVES]
    return moves[-1] if moves else None
