"""The release state machine (DESIGN.md §6) and its replay: the audit log is the record of
every decision, `expected_state` replays it into where each alias and status must be, `drift`
compares that with the registry, and `sync` (write commands, and the explicit `repair`) makes
the registry follow the log. A read command that finds drift raises an `IntegrityAlert`
(exit 3) naming what moved: it never writes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from magenta_release import audit, faults, policy_store
from magenta_release.errors import IntegrityViolation
from magenta_release.states import Status
from magenta_release.store import STATUS_TAG, Store

# A state change writes its event, then moves aliases: a reader that lands in between sees
# drift for a moment. It waits for the release lock before it raises the alarm.
IN_FLIGHT_WAIT_SECONDS = 30.0


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


@dataclass(frozen=True)
class Drift:
    """One difference between the registry and the log."""

    kind: str  # "status" | "alias" | "orphan" | "manifest" | "tag" | "head"
    version: int | None
    key: str
    expected: Any
    actual: Any

    def message(self) -> str:
        if self.kind == "orphan":
            return f"registry: version {self.version} has no event in the log"
        if self.kind == "alias":
            return (
                f"registry: @{self.key} is {self.actual} but the log says {self.expected} "
                "(moved outside magenta-release, or an interrupted command)"
            )
        if self.kind == "head":
            return (
                f"registry: the log's recorded head is {self.actual or 'missing'} but the log "
                f"ends at event {str(self.expected).split(':')[0]} (an interrupted command)"
            )
        if self.kind == "tag":
            return (
                f"registry: version {self.version} has {self.key}={self.actual!r} but the log "
                f"says {self.expected!r}"
            )
        if self.kind == "manifest":
            return (
                f"registry: version {self.version}'s manifest hash differs from the one "
                "recorded at proposal"
            )
        return (
            f"registry: version {self.version} has status {self.actual!r} but the log "
            f"says {self.expected!r}"
        )


def _manifest_tag_digest(tags: dict[str, str]) -> str | None:
    """The hash of the recorded manifest, recomputed from the manifest itself: both the
    manifest and its hash tag must agree with the log."""
    from magenta_release.integrity import manifest_digest

    try:
        digest = manifest_digest(json.loads(tags.get("release.manifest", "")))
    except ValueError:
        return None
    return digest if digest == tags.get("release.manifest_sha256") else None


def expected_state(log: list[audit.Event]) -> State:
    """Replay the log: each version's status and where each alias must point."""
    status: dict[int, str] = {}
    manifests: dict[int, str] = {}
    champion = previous = challenger = None
    decisions: dict[int, dict[str, str]] = {}
    for e in log:
        if e.action == "repair":
            continue
        _decide(decisions, e)
        if e.version is not None and e.status:
            status[e.version] = e.status
        if e.action == "propose" and e.version is not None:
            manifests[e.version] = e.manifest_sha256
            if e.status == Status.PENDING:
                challenger = e.version
        if e.action in {"approve", "reject"} and challenger == e.version:
            challenger = None
        if e.action in {"approve", "rollback"}:
            if e.champion_before is not None and e.champion_before != e.champion_after:
                status[e.champion_before] = (
                    Status.RETIRED if e.action == "approve" else Status.ROLLED_BACK
                )
            if e.action == "approve":
                previous = e.champion_before if e.champion_before is not None else previous
            else:  # the champion a rollback replaced: a second rollback rolls forward again
                previous = e.champion_before
            champion = e.champion_after
    return State(status, champion, previous, challenger, manifests, decisions)


# The version tags each decision writes: (on which version, {tag: event field}).
DECISION_TAGS = {
    "approve": {
        "release.approved_by": "actor",
        "release.approved_at": "time",
        "release.approve_reason": "reason",
    },
    "reject": {
        "release.rejected_by": "actor",
        "release.rejected_at": "time",
        "release.reject_reason": "reason",
    },
    "rollback": {"release.rolled_back_by": "actor", "release.rolled_back_at": "time"},
}
WHO_TAGS = ("release.approved_by", "release.rejected_by", "release.rolled_back_by")


def _decide(decisions: dict[int, dict[str, str]], e: audit.Event) -> None:
    tags = DECISION_TAGS.get(e.action)
    # a rollback marks the champion it replaced; approve and reject their own version
    on = e.champion_before if e.action == "rollback" else e.version
    if tags and on is not None and not (e.action == "rollback" and on == e.champion_after):
        decisions.setdefault(on, {}).update({k: str(getattr(e, f)) for k, f in tags.items()})


class LogBroken(IntegrityViolation):
    """The audit log itself does not verify (edited, deleted or garbage events): exit 3, and
    nothing repairs it — restore the store from a backup."""


def verified_log(store: Store) -> list[audit.Event]:
    """The log's events after checking the chain and its recorded head; LogBroken if not."""
    return _verified(store, audit.head(store))


def _verified(store: Store, head: tuple[int, str] | None) -> list[audit.Event]:
    parsed, problems, _ = audit.verify_chain(store)
    problems = problems or head_problems(head, parsed)
    if problems:
        raise LogBroken(
            f"the audit log of {store.name} is broken: {problems[0]}; nothing was changed — "
            "see `magenta-release audit verify`, then restore the store from a backup"
        )
    return parsed


def head_problems(head: tuple[int, str] | None, log: list[audit.Event]) -> list[str]:
    """A head beyond the log, naming another event, unreadable, or missing from a log this
    version of the tool wrote, is tampering. A head behind the log is an append interrupted
    between the event and the head (`drift` reports it)."""
    if head is None:
        # Only a store from before heads were recorded, or a first append interrupted
        # before its head, has none; every log with a stored policy had one from event 1.
        wrote_heads = any(e.action == policy_store.SET_ACTION for e in log)
        return (
            ["its recorded head is missing: it was deleted"] if wrote_heads and len(log) > 1 else []
        )
    seq, digest = head
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


def drift(store: Store, log: list[audit.Event] | None = None) -> list[Drift]:
    """Every difference between the registry and the state the log implies (LogBroken if the
    log itself does not verify)."""
    head = audit.head(store)  # read once: for the tampering check and for the drift
    log = _verified(store, head) if log is None else log
    state = expected_state(log)
    found: list[Drift] = []
    # No head yet (a store from before heads were recorded): the next append writes it.
    if log and head is not None and head[0] < len(log):
        found.append(Drift("head", None, audit.HEAD_TAG, f"{len(log)}:{log[-1].hash}", head))
    versions = store.registry.versions()
    actual_alias = {a: v.version for v in versions for a in v.aliases}
    for alias, expected in (
        ("champion", state.champion),
        ("previous", state.previous),
        ("challenger", state.challenger),
    ):
        if actual_alias.get(alias) != expected:
            found.append(Drift("alias", None, alias, expected, actual_alias.get(alias)))
    for v in versions:
        if v.version not in state.status:
            found.append(Drift("orphan", v.version, "", None, v.status))
            continue
        if v.tags.get(STATUS_TAG) != state.status[v.version]:
            found.append(
                Drift(
                    "status", v.version, STATUS_TAG, state.status[v.version], v.tags.get(STATUS_TAG)
                )
            )
        decided = state.decisions.get(v.version, {})
        for key in WHO_TAGS:
            if v.tags.get(key) != decided.get(key):
                found.append(Drift("tag", v.version, key, decided.get(key), v.tags.get(key)))
        if _manifest_tag_digest(v.tags) != state.manifests.get(v.version):
            found.append(
                Drift(
                    "manifest",
                    v.version,
                    "release.manifest_sha256",
                    state.manifests.get(v.version),
                    v.tags.get("release.manifest_sha256"),
                )
            )
    return found


def sync(store: Store, problems: list[Drift] | None = None) -> list[str]:
    """Apply the state the log implies: statuses first, then @champion, @previous,
    @challenger. Every state change appends its event and then calls this."""
    problems = drift(store) if problems is None else problems
    done: list[str] = []
    for d in problems:
        if d.kind == "head":
            store.tags.set_model_tag(store.name, audit.HEAD_TAG, str(d.expected))
            done.append(f"audit head: {d.actual} -> {d.expected}")
    decided = (
        expected_state(audit.events(store)).decisions
        if any(d.kind == "tag" for d in problems)
        else {}
    )
    for d in problems:
        if d.kind == "status" and d.version is not None:
            store.registry.set_version_tags(d.version, {STATUS_TAG: str(d.expected)})
            done.append(f"version {d.version}: status {d.actual!r} -> {d.expected!r}")
        if d.kind == "tag" and d.version is not None:
            if d.expected is None:
                store.registry.delete_version_tag(d.version, d.key)
            else:  # the decision's whole group: who, when, why
                keys = next(t for t in DECISION_TAGS.values() if d.key in t)
                values = decided.get(d.version, {})
                store.registry.set_version_tags(
                    d.version, {k: values[k] for k in keys if k in values}
                )
            done.append(f"version {d.version}: {d.key} {d.actual!r} -> {d.expected!r}")
    order = {"champion": 0, "previous": 1, "challenger": 2}
    for d in sorted((d for d in problems if d.kind == "alias"), key=lambda d: order[d.key]):
        store.registry.set_alias(d.key, d.expected)
        done.append(f"@{d.key}: {d.actual} -> {d.expected}")
        if d.key == "champion":
            faults.point("sync.after_champion_alias")
    return done


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


def check(store: Store) -> None:
    """Raise IntegrityAlert if the registry disagrees with the log. Reads only; if a state
    change is in flight (the release lock is held) it waits for it before deciding."""
    from magenta_release.lock import lock_held

    problems = drift(store)
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    while problems and lock_held(store) and time.monotonic() < deadline:
        time.sleep(0.2)
        problems = drift(store)
    if problems:
        from magenta_release import notify

        alert = IntegrityAlert(problems)
        notify.alert(store, alert)  # sent, never recorded: this is a read
        raise alert


def check_locked(store: Store) -> None:
    """`check` for a caller that holds the release lock: nothing else can be in flight."""
    problems = drift(store)
    if problems:
        raise IntegrityAlert(problems)


def alert_json(exc: IntegrityAlert) -> list[dict[str, Any]]:
    return [
        {
            "kind": d.kind,
            "version": d.version,
            "key": d.key,
            "expected": d.expected,
            "actual": d.actual,
            "message": d.message(),
        }
        for d in exc.problems
    ]


def verify(store: Store) -> audit.Verification:
    """`audit verify`: recompute the chain, then check that the registry matches what the
    log says (statuses, aliases, manifests, no version without an event)."""
    parsed, problems, count = audit.verify_chain(store)
    problems += head_problems(audit.head(store), parsed) if not problems else []
    problems += unknown_policies(store, parsed)
    if not problems:
        problems = [d.message() for d in drift(store, parsed)]
    return audit.Verification(not problems, count, problems)


def unknown_policies(store: Store, log: list[audit.Event]) -> list[str]:
    """Events made under a policy that is not a recorded version (a policy brought from the
    caller's shell), and recorded versions whose stored text no longer matches its hash."""
    problems = []
    known: set[str] = set()
    governed = False  # events before the first stored policy predate stored policies
    for e in log:
        if e.action == policy_store.SET_ACTION:
            known.add(e.policy_sha256)
            governed = True
        if governed and e.policy_sha256 not in known:
            problems.append(
                f"event {e.seq} ({e.action}): made under policy {e.policy_sha256[:12] or '?'}, "
                "which is not a recorded policy version (see: magenta-release policy history)"
            )
    recorded = policy_store.versions(log, store.name)
    for record in recorded:
        try:
            policy_store.read_text(store.client, record)
        except IntegrityViolation as exc:
            problems.append(str(exc))
    # The policy runs are a second record of every `policy set`: one the log does not name
    # had its event deleted (or its `policy set` was interrupted before the event).
    named = {r.run_id for r in recorded}
    for run_id, number in policy_store.stored_runs(store.client, store.name):
        if run_id not in named:
            problems.append(
                f"policy version {number} of {store.name} was stored (run {run_id}) but the "
                "log has no event for it: its event was deleted (restore from a backup), or "
                "its `policy set` was interrupted (delete that run)"
            )
    return problems
