"""The stored policy on a real PostgreSQL-backed `mlflow server` with basic-auth (issue 19 item
1): only a policy owner changes it, through the CLI or past it (the server's guard refuses a
hand-written `policy_set` event), and the approvers of the new version are the ones the server
enforces from then on. Uses its own model, `policy-guard`, on the session's shared server."""

from __future__ import annotations

import contextlib
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


@dataclass
class Guarded:
    cli: Cli
    server: Server
    folder: Path
    run_id: str

    def creds(self, user: str) -> dict[str, str]:
        if user == DORA:
            return {"MLFLOW_TRACKING_USERNAME": DORA, "MLFLOW_TRACKING_PASSWORD": DORA_PASSWORD}
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
    """MODEL governed on the server (init by carol: alice the only approver and owner), dora
    known to the server with MANAGE on MODEL, and one run of carol's to propose."""
    from mlflow.server import get_app_client

    from magenta_release.io.store import TEMPLATE_DIR

    folder = tmp_path_factory.mktemp("policy-guard")
    (folder / "release-policy.toml").write_text((TEMPLATE_DIR / "release-policy.toml").read_text())
    policy = write_policy(
        folder,
        model={"registered_name": MODEL, "experiment": MODEL},
        approval={"approvers": [ALICE], "policy_owners": [ALICE], "four_eyes": True},
        **SMALL_DATA_GATES,
    )
    state = Guarded(Cli(folder, {}), server, folder, "")
    state.cli = make_server_cli(server.url, policy, state.creds)
    state.cli.env["MAGENTA_RELEASE_MODEL"] = MODEL
    with as_admin():
        get_app_client("basic-auth", tracking_uri=server.url).create_user(DORA, DORA_PASSWORD)
    init = state.cli("init", "--json", by=CAROL)
    assert init.exit_code == 0, init.stderr
    assert json.loads(init.stdout)["model"] == MODEL
    state.run_id = state.cli.json(
        "train", "--rows", str(SMALL), "--seed", "7", "--param", "max_depth=3", by=CAROL
    )["run_id"]
    # clearing @challenger on approve/reject needs MANAGE: alice has it, dora only EDIT (yet)
    for user, permission in ((ALICE, "MANAGE"), (DORA, "EDIT")):
        _grant(server, user, permission)
    return state


def _grant(server: Server, user: str, permission: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    with as_admin():
        client = get_app_client("basic-auth", tracking_uri=server.url)
        with contextlib.suppress(MlflowException):  # a grant replaces nothing: revoke first
            client.revoke_user_permission(user, "registered_model", MODEL)
        client.grant_user_permission(user, "registered_model", MODEL, permission)


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


def test_only_a_policy_owner_may_change_the_policy(guarded: Guarded) -> None:
    history = guarded.cli.json("policy", "history", by=ALICE)
    log = _log(guarded)
    loose = guarded.draft("loose", approvers=[MALLORY], owners=[MALLORY])
    for who in (MALLORY, CAROL):  # nobody, and the person who ran init
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
    assert "not one of the policy owners" in _refused_by_server(guarded, MALLORY, key, value)
    assert _log(guarded) == log
    assert guarded.cli.json("policy", "history", by=ALICE) == history
    assert guarded.cli.json("audit", "verify", by=ALICE)["ok"] is True


def test_the_owners_new_approvers_take_effect_on_the_server(guarded: Guarded) -> None:
    g = guarded
    version = g.cli.json("propose", g.run_id, by=CAROL)["version"]
    # dora is not an approver yet: the CLI refuses, and so does the server when she writes
    # the approval herself
    result = g.cli("approve", str(version), "--reason", "x", "--yes", by=DORA)
    assert result.exit_code == 1 and "approver" in result.stderr, result.stderr
    key, value = _next_event(g, DORA, action="approve", version=version, champion_after=version)
    assert "approvers" in _refused_by_server(g, DORA, key, value)

    before = g.cli.json("policy", "history", by=ALICE)["versions"]
    wider = g.draft("wider", approvers=[ALICE, DORA], owners=[ALICE])
    done = g.cli.json("policy", "set", str(wider), "--reason", "dora approves too", by=ALICE)
    assert (done["changed"], done["version"], done["set_by"]) == (True, len(before) + 1, ALICE)
    newest = g.cli.json("policy", "history", by=DORA)["versions"][0]
    assert (newest["version"], newest["reason"]) == (len(before) + 1, "dora approves too")
    assert g.cli.json("policy", "show", by=DORA)["toml"] == wider.read_text()

    # the proposal was judged under the old version: re-propose, then dora's approval counts
    stale = g.cli("approve", str(version), "--reason", "x", "--yes", by=DORA)
    assert stale.exit_code == 1 and "re-propose" in stale.stderr, stale.stderr
    g.cli.json("reject", str(version), "--reason", "policy changed", by=ALICE)
    again = g.cli.json("propose", g.run_id, by=CAROL)
    assert again["status"] == "pending_approval" and again["version"] != version

    # an approver by the policy whom MLflow would not let clear @challenger: refused before
    # the write-ahead event, so no half-written approval exists for anyone to complete
    log = _log(g)
    short = g.cli("approve", str(again["version"]), "--reason", "ok", "--yes", by=DORA)
    assert short.exit_code == 1, short.stderr
    assert "has EDIT on policy-guard in MLflow" in short.stderr and "MANAGE" in short.stderr
    assert _log(g) == log
    assert g.cli.json("status", by=DORA)["pending"][0]["version"] == again["version"]
    _grant(g.server, DORA, "MANAGE")
    approved = g.cli.json("approve", str(again["version"]), "--reason", "ok", "--yes", by=DORA)
    assert approved["champion"] == again["version"]
    with acting_as(g, DORA) as client:
        assert client.get_registered_model(MODEL).aliases["champion"] == str(again["version"])
    last = g.cli.json("history", by=DORA)["events"][0]
    assert (last["action"], last["mlflow_user"]) == ("approve", DORA)
    assert g.cli.json("audit", "verify", by=DORA)["ok"] is True
