"""The release authority's endpoints, called as a caller who does not use the CLI would call
them (raw HTTP, the body crafted by hand), on the session's PostgreSQL-backed server: what it
can check it refuses itself (the run's own files, the manifest, today's champion and policy,
who decides), and what it cannot (gate results computed on the proposer's machine) the
approver's machine catches by re-computing the gates (issue 25 items 1, 4, 6). Uses its own
model, `authority-check`."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

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
from tests.integration.conftest import USERS, Server

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]

MODEL = "authority-check"
WORSE = ["max_depth=8", "n_estimators=15", "learning_rate=0.5"]


@dataclass
class Governed:
    cli: Cli
    server: Server
    runs: dict[str, str]
    champion: int

    def post(self, user: str | None, action: str, body: Any, **kwargs: Any) -> requests.Response:
        auth = (user, USERS[user]) if user else None
        return requests.post(
            f"{self.server.url}/api/2.0/magenta-release/{action}",
            data=body if isinstance(body, str) else json.dumps(body),
            headers={"Content-Type": "application/json"},
            auth=auth,
            timeout=120,
            **kwargs,
        )


@pytest.fixture(scope="module")
def governed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Governed:
    folder = tmp_path_factory.mktemp("authority")
    policy = write_policy(
        folder,
        model={"registered_name": MODEL, "experiment": MODEL},
        approval={"approvers": [ALICE], "policy_owners": [ALICE], "four_eyes": True},
        **SMALL_DATA_GATES,
    )
    cli = make_server_cli(server.url, policy, server.creds)
    cli.env["MAGENTA_RELEASE_MODEL"] = MODEL
    assert cli("init", by="admin").exit_code == 0
    runs = {
        name: cli.json("train", "--rows", str(SMALL), "--seed", "7", *args, by=CAROL)["run_id"]
        for name, args in (("good", ["--param", "max_depth=3"]), ("worse", _params(WORSE)))
    }
    v1 = cli.json("propose", runs["good"], by=CAROL)["version"]
    cli.json("approve", str(v1), "--reason", "baseline", "--yes", by=ALICE)
    return Governed(cli, server, runs, v1)


def _params(params: list[str]) -> list[str]:
    return [x for p in params for x in ("--param", p)]


def _evidence(g: Governed, run_id: str, *, all_passed: bool) -> tuple[str, str]:
    """What a proposer's machine sends: the gates evaluated for real against today's champion
    (with the library, as the CLI does), with every outcome turned to passed if asked. Returns
    (the model's source, the canonical evidence text)."""
    import os

    from magenta_release.app.context import Context
    from magenta_release.app.services import candidate, evaluation
    from magenta_release.core import integrity
    from magenta_release.core.evidence import Evidence
    from magenta_release.core.gates import Gate
    from magenta_release.core.settings import Settings

    saved = {k: os.environ.get(k) for k in g.server.creds(CAROL)}
    os.environ.update(g.server.creds(CAROL))
    try:
        ctx = Context.open(Settings(tracking_uri=g.server.url), MODEL)
        run = ctx.runs.get_run(run_id)
        model = candidate.locate_model(ctx.runs, run)
        champion = ctx.registry.alias("champion")
        with tempfile.TemporaryDirectory() as tmp:
            folder = ctx.runs.download_uri(model.source, Path(tmp) / "model")
            digest = integrity.manifest_digest(integrity.manifest(folder))
            gates, facts = evaluation.evaluate(ctx, run, folder, champion, Path(tmp))
        gates = [Gate(x.name, x.passed or all_passed, x.detail) for x in gates]
        gates.append(Gate("sha256_manifest", True, "forged"))
        evidence = Evidence(
            run_id,
            tuple(gates),
            facts,
            champion.version if champion else None,
            ctx.policy.sha256,
            digest,
        )
        return model.source, evidence.dumps()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _propose_body(g: Governed, run: str, **changes: Any) -> dict[str, Any]:
    source, text = _evidence(g, g.runs[run], all_passed=False)
    return {
        "model": MODEL,
        "run_id": g.runs[run],
        "source": source,
        "model_id": None,
        "evidence": text,
        "note": "",
        **changes,
    }


def test_what_the_authority_can_check_it_refuses(governed: Governed) -> None:
    g = governed
    before = g.cli.json("history", by=ALICE)["events"]
    body = _propose_body(g, "worse")
    evidence = json.loads(body["evidence"])
    cases = {
        # the model of another run, a path out of the run, the evidence re-serialised
        "other run's files": ({**body, "source": f"runs:/{g.runs['good']}/model"}, 400),
        "a path out of the run": ({**body, "source": f"runs:/{g.runs['worse']}/../x"}, 400),
        "evidence not canonical": ({**body, "evidence": json.dumps(evidence, indent=1)}, 400),
        "files not the ones evaluated": (
            {**body, "evidence": _canonical({**evidence, "manifest_sha256": "0" * 64})},
            409,
        ),
        "against an old champion": (
            {**body, "evidence": _canonical({**evidence, "champion": None})},
            403,
        ),
    }
    for what, (request, status) in cases.items():
        r = g.post(CAROL, "propose", request)
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        assert r.json()["exit_code"] in {1, 2, 3}, what
    stale = g.post(CAROL, "propose", cases["against an old champion"][0]).json()
    assert stale["error_code"] == "MAGENTA_STALE"
    # who decides is the authenticated caller, whatever the body says
    v1 = g.champion
    for user, action, request in (
        (CAROL, "approve", {"model": MODEL, "version": v1, "reason": "x", "champion": v1}),
        (MALLORY, "rollback", {"model": MODEL, "to": v1, "reason": "x", "champion": v1}),
        (MALLORY, "reject", {"model": MODEL, "version": v1, "reason": "x"}),
    ):
        r = g.post(user, action, request)
        assert r.status_code == 403, (user, action, r.text[:300])
    assert g.cli.json("history", by=ALICE)["events"] == before


def _canonical(doc: dict[str, Any]) -> str:
    from magenta_release.core.audit import dumps

    return dumps(doc)


def test_the_endpoints_need_a_login_and_a_json_object(governed: Governed) -> None:
    g = governed
    body = {"model": MODEL, "version": 1, "reason": "x"}
    assert g.post(None, "reject", body).status_code == 401
    assert g.post(ALICE, "reject", json.dumps(json.dumps(body))).status_code == 400
    assert g.post(ALICE, "reject", body, params={"model": MODEL}).status_code == 400
    assert g.post(ALICE, "no-such-action", body).status_code in {403, 404}


# ---- last: it leaves a forged proposal pending ----------------------------------------------
def test_forged_gate_results_are_caught_by_the_approvers_machine(g_forged: dict[str, Any]) -> None:
    """carol sends the authority passing gate results for a model that fails them; it records
    what her machine claims (it has no training stack to check it), and alice's approve,
    re-computing the gates, refuses with exit 3: the champion does not move."""
    g, version = g_forged["governed"], g_forged["version"]
    assert g_forged["status"] == "pending_approval"
    result = g.cli("approve", str(version), "--reason", "all green", "--yes", by=ALICE)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "re-computed" in result.stderr and "disagree" in result.stderr, result.stderr
    assert g.cli.json("status", by=ALICE)["champion"]["version"] == g.champion


@pytest.fixture(scope="module")
def g_forged(governed: Governed) -> dict[str, Any]:
    source, text = _evidence(governed, governed.runs["worse"], all_passed=True)
    r = governed.post(
        CAROL,
        "propose",
        {
            "model": MODEL,
            "run_id": governed.runs["worse"],
            "source": source,
            "model_id": None,
            "evidence": text,
            "note": "",
        },
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    return {"governed": governed, "version": doc["version"], "status": doc["status"]}


def test_a_notification_outcome_is_recorded_by_the_decisions_actor_once(
    governed: Governed,
) -> None:
    """The positive control of test_attacks_more's `notified` attack: alice approved the
    champion, so she records how its `approved` notification went; carol (who did not
    approve it) may not, and a second outcome is never written over the first."""
    body = {
        "model": MODEL,
        "version": governed.champion,
        "event": "approved",
        "outcome": {"at": "2026-12-04T09:00:00+00:00", "deliveries": []},
    }
    assert governed.post(CAROL, "notified", body).status_code == 403
    first = governed.post(ALICE, "notified", body)
    assert first.status_code == 200, first.text
    again = {**body, "outcome": {"at": "2026-12-04T10:00:00+00:00", "deliveries": []}}
    second = governed.post(ALICE, "notified", again)
    assert second.status_code == 403 and "never written over" in second.text, second.text
    got = requests.get(
        f"{governed.server.url}/api/2.0/mlflow/model-versions/get",
        params={"name": MODEL, "version": str(governed.champion)},
        auth=(ALICE, USERS[ALICE]),
        timeout=120,
    )
    tags = {t["key"]: t["value"] for t in got.json()["model_version"]["tags"]}
    assert json.loads(tags["release.notify.approved"])["at"] == "2026-12-04T09:00:00+00:00"
