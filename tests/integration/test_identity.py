"""Identity from IAP and four eyes enforced by the server: a real `mlflow server` running the
magenta-release plugin in IAP mode behind a stand-in for IAP, with test-signed tokens whose keys
a local JWKS endpoint serves, on PostgreSQL. The CLI reaches it through the IAP header provider."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from magenta_release.core.settings import TELEMETRY_OFF
from magenta_release.io.audit_log import EVENT_PREFIX, HEAD_TAG, Event
from tests.conftest import SMALL, SMALL_DATA_GATES, Cli, Result, invoke, write_policy
from tests.integration.conftest import Server, server_policy
from tests.integration.services import (
    ADMIN_PASSWORD,
    GOOGLE_ISSUER,
    IAP_ISSUER,
    IapProxy,
    MlflowServer,
    Signer,
    serve_jwks,
)

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]

AUDIENCE = "/projects/123456789/locations/europe-west3/services/mlflow"
CLIENT_ID = "magenta-release-cli.apps.googleusercontent.com"
CAROL, ALICE, BOB = "carol@magenta.example", "alice@magenta.example", "bob@magenta.example"
ADMIN = "platform@magenta.example"
MODEL, LOG = "churn-classifier", "churn-classifier-audit-log"


@dataclass
class Iap:
    server: MlflowServer
    proxy: IapProxy
    iap_key: Signer
    google: Signer
    folder: Path
    policy: Path

    def assertion(self, email: str, **override: Any) -> str:
        claims = {
            "email": f"accounts.google.com:{email}",
            "sub": f"accounts.google.com:{abs(hash(email))}",
            "aud": AUDIENCE,
            "iss": IAP_ISSUER,
            **override,
        }
        return self.iap_key.sign(claims)

    def token_file(self, email: str) -> Path:
        path = self.folder / f"{email}.idtoken"
        if not path.exists():
            token = self.google.sign(
                {"email": email, "aud": CLIENT_ID, "iss": GOOGLE_ISSUER, "sub": email}, ttl=3600
            )
            path.write_text(token)
        return path

    def env(self, email: str, url: str | None = None) -> dict[str, str | None]:
        return {
            **TELEMETRY_OFF,
            "NO_COLOR": "1",
            "MLFLOW_TRACKING_URI": url or self.proxy.url,
            "MLFLOW_TRACKING_USERNAME": None,
            "MLFLOW_TRACKING_PASSWORD": None,
            "MAGENTA_RELEASE_IAP_CLIENT_ID": CLIENT_ID,
            "MAGENTA_RELEASE_IAP_TOKEN_FILE": str(self.token_file(email)),
            "MAGENTA_RELEASE_POLICY": str(self.policy),
            "MAGENTA_RELEASE_USER": email,
        }

    def as_cli(self, url: str | None = None) -> Cli:
        """The suite's one CLI helper, logging in through IAP as `by=`."""
        return Cli(self.folder, {}, identity=lambda email: self.env(email, url))

    def cli(self, *args: str, user: str, url: str | None = None) -> Result:
        return self.as_cli(url)(*args, by=user)

    def json(self, *args: str, user: str) -> dict[str, Any]:
        return self.as_cli().json(*args, by=user)

    @contextmanager
    def acting_as(self, email: str) -> Iterator[Any]:
        """A plain MlflowClient for `email`, through IAP (the header provider adds the token)."""
        from mlflow import MlflowClient

        env = self.env(email)
        saved = {k: os.environ.get(k) for k in env}
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        try:
            yield MlflowClient(tracking_uri=self.proxy.url, registry_uri=self.proxy.url)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def iap(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iap]:
    root = tmp_path_factory.mktemp("iap")
    iap_key, google = Signer("iap-test-key"), Signer("google-test-key")
    jwks = serve_jwks(iap_key)
    policy = server_policy(root / "server-policy", [ALICE, BOB])
    srv = MlflowServer(
        root / "server",
        server.postgres.create_db("iap_mlflow"),
        server.postgres.create_db("iap_mlflow_auth"),
        plugin_env={
            "MAGENTA_RELEASE_AUTH": "iap",
            "MAGENTA_RELEASE_IAP_HEADER_AUDIENCE": AUDIENCE,
            "MAGENTA_RELEASE_IAP_JWKS_URL": jwks.url,
            "MAGENTA_RELEASE_IAP_ADMINS": ADMIN,
        },
    )
    client_policy = root / "client" / "release-policy.toml"
    client_policy.parent.mkdir()
    client_policy.write_text(policy.read_text())
    write_policy(client_policy.parent, **SMALL_DATA_GATES)
    proxy: IapProxy | None = None
    try:
        srv.start()
        proxy = IapProxy(srv.url, google, CLIENT_ID)
        state = Iap(srv, proxy, iap_key, google, root, client_policy)
        proxy.mint = state.assertion
        proxy.start()
        yield state
    finally:
        if proxy is not None:
            proxy.stop()
        srv.stop()
        jwks.stop()


def _grant(iap: Iap, user: str, model: str, permission: str) -> None:
    from mlflow.server import get_app_client

    with iap.acting_as(ADMIN):
        get_app_client("basic-auth", tracking_uri=iap.proxy.url).grant_user_permission(
            user, "registered_model", model, permission
        )


@pytest.fixture(scope="module")
def released(iap: Iap) -> dict[str, int]:
    """carol proposes two versions, alice approves both: v1, then v2 as champion."""
    assert iap.cli("init", user=ADMIN).exit_code == 0
    runs = [
        iap.json("train", "--rows", str(SMALL), "--seed", "7", "--param", p, user=CAROL)
        for p in ("max_depth=3", "max_depth=4")
    ]
    v1 = iap.json("propose", runs[0]["run_id"], user=CAROL)["version"]
    for approver in (ALICE, BOB):  # first sight creates the user; no MLflow grant is needed:
        assert iap.cli("status", user=approver).exit_code == 0  # the policy decides
    assert iap.json("approve", str(v1), "--reason", "first", "--yes", user=ALICE)["champion"] == v1
    v2 = iap.json("propose", runs[1]["run_id"], user=CAROL)["version"]
    assert iap.json("approve", str(v2), "--reason", "better", "--yes", user=ALICE)["champion"] == v2
    return {"v1": v1, "v2": v2}


def _champion(iap: Iap) -> str | None:
    with iap.acting_as(ALICE) as client:
        champion: str | None = client.get_registered_model(MODEL).aliases.get("champion")
        return champion


def _log_tags(iap: Iap) -> dict[str, str]:
    with iap.acting_as(ALICE) as client:
        return dict(client.get_registered_model(LOG).tags)


def _refused(call: Callable[[], object]) -> str:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        call()
    assert info.value.error_code == "PERMISSION_DENIED", info.value.message
    return str(info.value.message)


def test_the_iap_email_is_the_authenticated_user_in_history(
    iap: Iap, released: dict[str, int]
) -> None:
    events = iap.json("history", user=CAROL)["events"]
    by_action = {(e["action"], e["version"]): e["mlflow_user"] for e in events}
    assert by_action[("propose", released["v1"])] == CAROL
    assert by_action[("approve", released["v1"])] == ALICE
    assert by_action[("approve", released["v2"])] == ALICE
    assert iap.json("status", user=BOB)["champion"]["version"] == released["v2"]


def test_a_plain_client_cannot_write_the_governed_model_admins_included(
    iap: Iap, released: dict[str, int]
) -> None:
    """The release authority is the only writer: an approver with MANAGE on the model and an
    MLflow admin, each with a plain MlflowClient, write nothing about it."""
    _grant(iap, ALICE, MODEL, "MANAGE")
    for who in (ALICE, ADMIN):
        with iap.acting_as(who) as client:
            writes = [
                partial(client.set_registered_model_alias, MODEL, "champion", released["v1"]),
                partial(client.delete_registered_model_alias, MODEL, "champion"),
                partial(client.set_registered_model_alias, MODEL, "previous", "2"),
                partial(client.set_registered_model_alias, MODEL, "challenger", "1"),
                partial(client.set_model_version_tag, MODEL, "1", "release.status", "approved"),
                partial(client.update_model_version, MODEL, "1", description="edited"),
                partial(client.set_registered_model_tag, MODEL, HEAD_TAG, "1:x"),
                partial(client.delete_registered_model, MODEL),
                partial(client.rename_registered_model, MODEL, "elsewhere"),
            ]
            for write in writes:
                assert "governed by magenta-release" in _refused(write)
    assert _champion(iap) == str(released["v2"])


def test_the_audit_log_is_written_by_the_release_authority_alone(
    iap: Iap, released: dict[str, int]
) -> None:
    """Not even the correctly chained next event, written by the user it names, is accepted
    through the API: an event is written where it is validated, by the authority."""
    before = _log_tags(iap)
    keys = sorted(k for k in before if k.startswith(EVENT_PREFIX))
    last = Event(**json.loads(before[keys[-1]]))
    draft = Event(
        **{
            **last.body(),
            "seq": last.seq + 1,
            "action": "repair",
            "version": None,
            "actor": CAROL,
            "mlflow_user": CAROL,
            "prev_hash": last.hash,
            "reason": "test",
        }
    )
    done = Event(**{**draft.body(), "hash": draft.compute_hash()})
    key, good = f"{EVENT_PREFIX}{done.seq:08d}", json.dumps(done.to_json())
    with iap.acting_as(CAROL) as client:  # carol created the log: she has MANAGE on it
        for write in (
            partial(client.set_registered_model_tag, LOG, key, good),
            partial(client.set_registered_model_tag, LOG, keys[0], before[keys[0]]),
            partial(client.delete_registered_model_tag, LOG, keys[-1]),
            partial(client.delete_registered_model, LOG),
            partial(client.rename_registered_model, LOG, "something-else"),
            partial(client.set_registered_model_tag, MODEL, HEAD_TAG, f"{done.seq}:{done.hash}"),
        ):
            _refused(write)
    assert _log_tags(iap) == before
    assert iap.json("audit", "verify", user=CAROL)["ok"] is True


def test_rollback_by_an_approver_succeeds(iap: Iap, released: dict[str, int]) -> None:
    back = iap.json("rollback", "--reason", "drill", "--yes", user=BOB)
    assert back["champion"] == released["v1"]
    assert _champion(iap) == str(released["v1"])
    events = iap.json("history", user=BOB)["events"]
    assert [e["mlflow_user"] for e in events if e["action"] == "rollback"] == [BOB]
    assert iap.json("audit", "verify", user=BOB)["ok"] is True


def _status(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/registered-models/search", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


BAD_ASSERTIONS: dict[str, Callable[[Iap], str]] = {
    "forged": lambda iap: Signer(iap.iap_key.kid).sign(
        {"email": ALICE, "aud": AUDIENCE, "iss": IAP_ISSUER}
    ),
    "expired": lambda iap: iap.iap_key.sign(
        {"email": ALICE, "aud": AUDIENCE, "iss": IAP_ISSUER}, ttl=-600
    ),
    "wrong_audience": lambda iap: iap.assertion(ALICE, aud="/projects/1/global/backendServices/9"),
    "wrong_issuer": lambda iap: iap.assertion(ALICE, iss="https://accounts.google.com"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ASSERTIONS))
def test_a_bad_assertion_is_401_and_the_cli_exits_4(iap: Iap, kind: str) -> None:
    token = BAD_ASSERTIONS[kind](iap)
    assert _status(iap.server.url, {"x-goog-iap-jwt-assertion": token}) == 401
    assert _status(iap.server.url, {"x-goog-iap-jwt-assertion": iap.assertion(ALICE)}) == 200
    iap.proxy.mint = lambda _email: token
    try:
        result = iap.cli("status", user=ALICE)
    finally:
        iap.proxy.mint = iap.assertion
    assert result.exit_code == 4, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_a_missing_assertion_is_401_and_the_cli_exits_4(iap: Iap) -> None:
    assert _status(iap.server.url, {}) == 401
    # straight to the server, basic-auth credentials and all: they do not stand in for IAP
    env = {
        **iap.env(ALICE, iap.server.url),
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD,
    }
    result = invoke(["status"], env)
    assert result.exit_code == 4, (result.stdout, result.stderr)


def test_the_ui_side_doors_are_shut(server: Server) -> None:
    import base64

    basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(server.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode()

    code, text = call("GET", "/ajax-api/3.0/mlflow/gateway/supported-providers")
    assert code in {404, 501} and "disabled" in text.lower(), (code, text)
    code, text = call("GET", "/api/3.0/mlflow/server-info")
    assert code == 200 and json.loads(text)["features_enabled"]["gateway"] is False, text
    from mlflow.genai.scorers.job import ONLINE_TRACE_SCORER_JOB_NAME

    code, text = call(
        "POST", "/ajax-api/3.0/jobs/", {"job_name": ONLINE_TRACE_SCORER_JOB_NAME, "params": {}}
    )
    assert code >= 400 and "not enabled" in text, (code, text)


def test_the_assistant_refuses_remote_callers(iap: Iap) -> None:
    """Through (stand-in) IAP the caller is remote, as on Cloud Run: the Assistant refuses."""
    token = iap.token_file(ALICE).read_text()
    req = urllib.request.Request(
        iap.proxy.url + "/ajax-api/3.0/mlflow/assistant/message",
        data=json.dumps({"message": "hi"}).encode(),
        headers={"Proxy-Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            code, text = int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        code, text = int(e.code), e.read().decode()
    assert code in {403, 404}, (code, text)
    assert code == 404 or "only accessible from the same host" in text, text
