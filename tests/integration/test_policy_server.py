"""The stored policy on a real PostgreSQL-backed `mlflow server` with basic-auth: only a policy
owner proposes a change, and under four eyes a second person (another owner or an approver)
confirms it before it is in force (issue 25 item 4); nobody writes a `policy_set` event past
the release authority; the approvers of the new version are the ones the authority enforces
from then on. Uses its own model, `policy-guard`, on the session's shared server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from magenta_release.io.audit_log import EVENT_PREFIX, Event
from tests.conftest import (
    ALICE,
    CAROL,
    MALLORY,
    SMALL,
    SMALL_DATA_GATES,
    Cli,
    make_server_cli,
    write_policy,
)
from tests.integration.conftest import Server, as_admin

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]

MODEL, LOG = "policy-guard", "policy-guard-audit-log"
DORA = "dora"  # not an approver at first; the owner's new policy adds her
DORA_PASSWORD = "dora-Pass-1-long"  # basic-auth wants 12 characters or more
BOB = "bob"  # an approver: the second person who confirms the owner's policy change
BOB_PASSWORD = "bob-Pass-1-long"
PASSWORDS = {DORA: DORA_PASSWORD, BOB: BOB_PASSWORD}


@dataclass
class Guarded:
    cli: Cli
    server: Server
    folder: Path
    run_id: str

    def creds(self, user: str) -> dict[str, str]:
        if user in PASSWORDS:
            return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": PASSWORDS[user]}
        return self.server.creds(user)

    def draft(self, name: str, approvers: list[str], owners: list[str]) -> Path:
        """A policy file for MODEL with these approvers and owners (four eyes on)."""
        folder = self.folder / name
        folder.mkdir()
        (folder / "release-policy.toml").write_text(
            (self.folder / "release-policy.toml").read_text()
        )
        return write_policy(
            folder,
            approval={"approvers": approvers, "policy_owners": owners, "four_eyes": True},
        )


@pytest.fixture(scope="module")
def guarded(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Guarded:
    """MODEL governed on the server (init by the MLflow admin: alice the owner, alice and bob the
    approvers, four eyes on), dora and bob known to the server, one run of carol's to
    propose. Nobody holds an MLflow grant on MODEL: the authority decides by the policy."""
    from mlflow.server import get_app_client

    from magenta_release.io.store import TEMPLATE_DIR

    folder = tmp_path_factory.mktemp("policy-guard")
    (folder / "release-policy.toml").write_text((TEMPLATE_DIR / "release-policy.toml").read_text())
    policy = write_policy(
        folder,
        model={"registered_name": MODEL, "experiment": MODEL},
        approval={"approvers": [ALICE, BOB], "policy_owners": [ALICE], "four_eyes": True},
        **SMALL_DATA_GATES,
    )
    state = Guarded(Cli(folder, {}), server, folder, "")
    state.cli = make_server_cli(server.url, policy, state.creds)
    state.cli.env["MAGENTA_RELEASE_MODEL"] = MODEL
    with as_admin():
        for user, password in PASSWORDS.items():
            get_app_client("basic-auth", tracking_uri=server.url).create_user(user, password)
    init = state.cli("init", "--json", by="admin")
    assert init.exit_code == 0, init.stderr
    assert json.loads(init.stdout)["model"] == MODEL
    state.run_id = state.cli.json(
        "train", "--rows", str(SMALL), "--seed", "7", "--param", "max_depth=3", by=CAROL
    )["run_id"]
    return state


@contextmanager
def acting_as(g: Guarded, user: str) -> Iterator[Any]:
    """A plain MlflowClient logged in as `user` (MLflow's REST client reads credentials from
    the environment), past magenta-release entirely."""
    from mlflow import MlflowClient

    creds = g.creds(user)
    saved = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    try:
        yield MlflowClient(tracking_uri=g.server.url, registry_uri=g.server.url)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _log(g: Guarded) -> dict[str, str]:
    with acting_as(g, ALICE) as client:
        return {
            k: v
            for k, v in client.get_registered_model(LOG).tags.items()
            if k.startswith(EVENT_PREFIX)
        }


def _next_event(g: Guarded, user: str, **fields: Any) -> tuple[str, str]:
    """The next event of the log, correctly chained and hashed, written as `user`."""
    tags = _log(g)
    last = Event(**json.loads(tags[max(tags)]))
    draft = Event(
        **{
            **last.body(),
            "seq": last.seq + 1,
            "actor": user,
            "mlflow_user": user,
            "prev_hash": last.hash,
            "version": None,
            "status": None,
            "reason": "hand-written",
            "details": {},
            **fields,
        }
    )
    done = Event(**{**draft.body(), "hash": draft.compute_hash()})
    return f"{EVENT_PREFIX}{done.seq:08d}", json.dumps(done.to_json())


def _refused_by_server(g: Guarded, user: str, key: str, value: str) -> str:
    from mlflow.exceptions import MlflowException

    with acting_as(g, user) as client, pytest.raises(MlflowException) as info:
        client.set_registered_model_tag(LOG, key, value)
    assert info.value.error_code == "PERMISSION_DENIED", info.value.message
    return str(info.value.message)


def test_only_a_policy_owner_may_propose_a_change(guarded: Guarded) -> None:
    history = guarded.cli.json("policy", "history", by=ALICE)
    log = _log(guarded)
    loose = guarded.draft("loose", approvers=[MALLORY], owners=[MALLORY])
    for who in (MALLORY, CAROL, BOB):  # nobody, the person who ran init, an approver
        result = guarded.cli("policy", "set", str(loose), "--reason", "mine", by=who)
        assert result.exit_code == 1, (result.stdout, result.stderr)
        assert f"{who} is not one of the policy owners of '{MODEL}'" in result.stderr

    # past the CLI: mallory writes the policy_set event herself, chained and hashed correctly
    key, value = _next_event(
        guarded,
        MALLORY,
        action="policy_set",
        policy_sha256="e" * 64,
        details={
            "run_id": "0" * 32,
            "policy_version": len(history["versions"]) + 1,
            "approvers": [MALLORY],
            "policy_owners": [MALLORY],
            "four_eyes": False,
        },
    )
    assert "only its release authority writes it" in _refused_by_server(
        guarded, MALLORY, key, value
    )
    assert _log(guarded) == log
    assert guarded.cli.json("policy", "history", by=ALICE) == history
    assert guarded.cli.json("audit", "verify", by=ALICE)["ok"] is True


def test_a_change_is_in_force_once_a_second_person_confirms_it(guarded: Guarded) -> None:
    g = guarded
    version = g.cli.json("propose", g.run_id, by=CAROL)["version"]
    # dora is not an approver yet: the CLI refuses, and so does the server when she writes
    # the approval herself
    result = g.cli("approve", str(version), "--reason", "x", "--yes", by=DORA)
    assert result.exit_code == 1 and "approver" in result.stderr, result.stderr
    key, value = _next_event(g, DORA, action="approve", version=version, champion_after=version)
    assert "PERMISSION_DENIED" in _refused_by_server(g, DORA, key, value)

    before = g.cli.json("policy", "history", by=ALICE)["versions"]
    in_force = g.cli.json("policy", "show", by=ALICE)["toml"]
    wider = g.draft("wider", approvers=[ALICE, BOB, DORA], owners=[ALICE])
    proposed = g.cli.json("policy", "set", str(wider), "--reason", "dora approves too", by=ALICE)
    assert proposed["changed"] is False and proposed["pending"]["proposed_by"] == ALICE
    assert g.cli.json("policy", "show", by=DORA)["toml"] == in_force  # not in force yet
    alone = g.cli("policy", "set", str(wider), "--reason", "mine alone", by=ALICE)
    assert alone.exit_code == 1 and "cannot confirm it too" in alone.stderr, alone.stderr
    for who in (CAROL, DORA):  # neither an owner nor an approver of the policy in force
        refused = g.cli("policy", "set", str(wider), "--reason", "me too", by=who)
        assert refused.exit_code == 1, refused.stderr
    done = g.cli.json("policy", "set", str(wider), "--reason", "confirmed", by=BOB)
    assert (done["changed"], done["version"], done["set_by"]) == (True, len(before) + 1, BOB)
    newest = g.cli.json("policy", "history", by=DORA)["versions"][0]
    assert (newest["version"], newest["set_by"]) == (len(before) + 1, BOB)
    assert g.cli.json("policy", "show", by=DORA)["toml"] == wider.read_text()
    events = g.cli.json("history", by=DORA)["events"]
    assert [e["action"] for e in events[:2]] == ["policy_set", "policy_propose"]
    assert events[0]["details"]["proposed_by"] == ALICE

    # the proposal was judged under the old version: re-propose, then dora's approval counts
    stale = g.cli("approve", str(version), "--reason", "x", "--yes", by=DORA)
    assert stale.exit_code == 1 and "re-propose" in stale.stderr, stale.stderr
    g.cli.json("reject", str(version), "--reason", "policy changed", by=ALICE)
    again_v = g.cli.json("propose", g.run_id, by=CAROL)
    assert again_v["status"] == "pending_approval" and again_v["version"] != version
    approved = g.cli.json("approve", str(again_v["version"]), "--reason", "ok", "--yes", by=DORA)
    assert approved["champion"] == again_v["version"]
    with acting_as(g, DORA) as client:
        assert client.get_registered_model(MODEL).aliases["champion"] == str(again_v["version"])
    last = g.cli.json("history", by=DORA)["events"][0]
    assert (last["action"], last["mlflow_user"]) == ("approve", DORA)
    assert g.cli.json("audit", "verify", by=DORA)["ok"] is True
