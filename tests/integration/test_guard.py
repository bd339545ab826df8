"""The server guard's decisions, on an in-memory registry (the rules are pure; the server-mode
tests in test_identity.py run them inside a real `mlflow server`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from magenta_release.io.audit_log import EVENT_PREFIX, GENESIS, Event
from magenta_release.server.guard import Refused, decide

MODEL = "churn-classifier"
LOG = f"{MODEL}-audit-log"
# what `policy set` writes into its event: the rules the guard reads from the log
POLICY = {"approvers": ["alice", "bob"], "policy_owners": ["dora"], "four_eyes": True}


@dataclass
class Memory:
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    alias: dict[str, int] = field(default_factory=dict)

    def tags(self, name: str) -> dict[str, str] | None:
        return self.models.get(name)

    def aliases(self, name: str) -> dict[str, int]:
        return dict(self.alias) if name == MODEL else {}

    def is_admin(self, user: str) -> bool:
        return user == "admin"

    def last(self) -> Event | None:
        keys = sorted(self.models.get(LOG, {}))
        return Event(**json.loads(self.models[LOG][keys[-1]])) if keys else None

    def event(self, action: str, user: str, **fields: Any) -> tuple[str, str]:
        """The next chained event (not yet stored)."""
        last = self.last()
        draft = Event(
            **{
                "seq": last.seq + 1 if last else 1,
                "time": "2026-11-27T00:00:00.000+00:00",
                "actor": user,
                "action": action,
                "version": None,
                "status": None,
                "champion_before": None,
                "champion_after": None,
                "reason": "",
                "evidence_sha256": "",
                "manifest_sha256": "",
                "policy_sha256": "",
                "mlflow_user": user,
                "prev_hash": last.hash if last else GENESIS,
                **fields,
            }
        )
        done = Event(**{**draft.body(), "hash": draft.compute_hash()})
        return f"{EVENT_PREFIX}{done.seq:08d}", json.dumps(done.to_json())

    def append(self, action: str, user: str, **fields: Any) -> None:
        key, value = self.event(action, user, **fields)
        decide(self, user, "set_tag", {"name": LOG, "key": key, "value": value})
        self.models.setdefault(LOG, {})[key] = value


def _move(reg: Memory, user: str, alias: str, version: int | None) -> None:
    op = "set_alias" if version is not None else "delete_alias"
    decide(reg, user, op, {"name": MODEL, "alias": alias, "version": version})


@pytest.fixture
def approved() -> Memory:
    """carol proposed 1 and 2; alice approved 1, then 2 (aliases moved accordingly)."""
    reg = Memory()
    reg.append("policy_set", "dora", details={"run_id": "r1", **POLICY})
    reg.append("propose", "carol", version=1)
    reg.append("approve", "alice", version=1, champion_before=None, champion_after=1)
    reg.alias = {"champion": 1}
    reg.append("propose", "carol", version=2)
    reg.append("approve", "alice", version=2, champion_before=1, champion_after=2)
    return reg


def test_the_approver_may_make_exactly_the_approved_move(approved: Memory) -> None:
    _move(approved, "alice", "champion", 2)
    _move(approved, "alice", "previous", 1)
    with pytest.raises(Refused, match="does not authorize"):
        _move(approved, "alice", "champion", 1)
    with pytest.raises(Refused, match="does not authorize"):
        _move(approved, "alice", "previous", None)


@pytest.mark.parametrize("user", ["carol", "bob", "mallory"])
def test_nobody_else_may_make_it(approved: Memory, user: str) -> None:
    with pytest.raises(Refused, match="written by alice"):
        _move(approved, user, "champion", 2)


def test_an_event_authorizes_one_move(approved: Memory) -> None:
    approved.alias = {"champion": 7}  # somewhere the event does not start from
    with pytest.raises(Refused, match="an event authorizes one move"):
        _move(approved, "alice", "champion", 2)


def test_a_rollback_supersedes_the_approval(approved: Memory) -> None:
    approved.alias = {"champion": 2, "previous": 1}
    approved.append("rollback", "bob", version=1, champion_before=2, champion_after=1)
    with pytest.raises(Refused, match="written by bob"):
        _move(approved, "alice", "champion", 2)  # replaying alice's approval
    _move(approved, "bob", "champion", 1)
    # @previous follows the rollback to the champion it replaced; deleting it is not the move
    with pytest.raises(Refused):
        _move(approved, "bob", "previous", None)
    _move(approved, "bob", "previous", 2)


def test_self_approval_is_refused_when_written(approved: Memory) -> None:
    approved.append("propose", "alice", version=3)
    with pytest.raises(Refused, match="four eyes"):
        approved.append("approve", "alice", version=3, champion_before=2, champion_after=3)
    with pytest.raises(Refused, match="approvers"):
        approved.append("approve", "carol", version=3, champion_before=2, champion_after=3)


def test_the_log_only_grows(approved: Memory) -> None:
    key, value = approved.event("repair", "carol")
    first = sorted(approved.models[LOG])[0]
    cases = [
        ("set_tag", {"key": first, "value": value}, "overwritten"),
        ("delete_tag", {"key": first}, "cannot be deleted"),
        ("delete_model", {}, "cannot be deleted"),
        ("rename_model", {"new_name": "x"}, "keep"),
    ]
    for op, params, why in cases:
        with pytest.raises(Refused, match=why):
            decide(approved, "carol", op, {"name": LOG, **params})
    with pytest.raises(Refused, match="names 'carol'"):
        decide(approved, "mallory", "set_tag", {"name": LOG, "key": key, "value": value})
    with pytest.raises(Refused, match="start empty"):
        decide(
            Memory(),
            "carol",
            "create_model",
            {"name": LOG, "tags": [{"key": key, "value": value}]},
        )
    decide(approved, "carol", "set_tag", {"name": LOG, "key": key, "value": value})


def test_a_tampered_log_authorizes_nothing(approved: Memory) -> None:
    last = sorted(approved.models[LOG])[-1]
    approved.models[LOG][last] = approved.models[LOG][last].replace('"reason": ""', '"reason": "x"')
    with pytest.raises(Refused, match="does not verify"):
        _move(approved, "alice", "champion", 2)


def test_other_aliases_and_models_are_free(approved: Memory) -> None:
    _move(approved, "mallory", "challenger", 5)
    decide(
        approved,
        "mallory",
        "set_alias",
        {"name": "other", "alias": "champion", "version": 1},
    )
    decide(approved, "mallory", "delete_model", {"name": "other"})
    with pytest.raises(Refused, match="holds @champion"):
        decide(approved, "mallory", "delete_version", {"name": MODEL, "version": "1"})


def test_only_a_policy_owner_may_change_the_policy(approved: Memory) -> None:
    loose = {**POLICY, "approvers": ["alice"], "four_eyes": False}
    for user in ("alice", "carol", "mallory"):
        with pytest.raises(Refused, match="not one of the policy owners"):
            approved.append("policy_set", user, details={"run_id": "r2", **loose})
    with pytest.raises(Refused, match="without approvers"):
        approved.append("policy_set", "dora", details={"run_id": "r2"})
    approved.append("policy_set", "dora", details={"run_id": "r2", **loose})
    # the new rules hold from the next event on: alice may now approve her own proposal
    approved.append("propose", "alice", version=3)
    approved.append("approve", "alice", version=3, champion_before=2, champion_after=3)


def test_a_model_without_a_policy_is_not_governed() -> None:
    reg = Memory()
    decide(reg, "mallory", "set_alias", {"name": MODEL, "alias": "champion", "version": 1})
    reg.append("propose", "carol", version=1)  # a log with events but no policy
    with pytest.raises(Refused, match="no policy"):
        reg.append("approve", "alice", version=1, champion_before=None, champion_after=1)
    # a log from before stored policies: only an MLflow admin stores its first policy
    with pytest.raises(Refused, match="an MLflow admin stores its first policy"):
        reg.append("policy_set", "mallory", details={"run_id": "r", **POLICY})
    reg.append("policy_set", "admin", details={"run_id": "r", **POLICY})
    reg.append("approve", "alice", version=1, champion_before=None, champion_after=1)
