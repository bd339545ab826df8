"""Server mode for real: one PostgreSQL cluster and one `mlflow server` (the magenta-release plugin
in basic-auth mode, proxied artifacts, one worker, AI Gateway, Assistant, job execution and
telemetry off) per test session, on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import write_policy
from tests.integration.services import ADMIN_PASSWORD, MlflowServer, Postgres

USERS = {"carol": "carol-Pass-1", "alice": "alice-Pass-1", "mallory": "mallory-Pass-1"}
APPROVERS = ["alice"]


def server_policy(folder: Path, approvers: list[str]) -> Path:
    """A policy file for `init` to store (the server then enforces the stored version): the
    template with these approvers (the first is the policy owner) and four eyes on."""
    from magenta_release.io.store import TEMPLATE_DIR

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "release-policy.toml").write_text((TEMPLATE_DIR / "release-policy.toml").read_text())
    return write_policy(
        folder,
        approval={"approvers": approvers, "policy_owners": approvers[:1], "four_eyes": True},
    )


@dataclass
class Server:
    url: str
    postgres: Postgres
    root: Path

    def creds(self, user: str) -> dict[str, str]:
        password = ADMIN_PASSWORD if user == "admin" else USERS[user]
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


@contextmanager
def as_admin() -> Iterator[None]:
    """MLflow's REST client reads credentials from the environment: act as the server admin
    for the block, then restore whatever was set."""
    keys = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict(zip(keys, ("admin", ADMIN_PASSWORD), strict=True)))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from mlflow.server import get_app_client

    root = tmp_path_factory.mktemp("server")
    pg = Postgres().start()
    srv = MlflowServer(
        root,
        pg.url("mlflow"),
        pg.url("mlflow_auth"),
        plugin_env={"MAGENTA_RELEASE_AUTH": "basic"},
    )
    try:
        srv.start()
        with as_admin():
            auth = get_app_client("basic-auth", tracking_uri=srv.url)
            for user, password in USERS.items():
                auth.create_user(user, password)
        yield Server(srv.url, pg, root)
    finally:
        srv.stop()
        pg.stop()
        # nothing may be left listening once the session is over
        for port in (srv.port, pg.port):
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening"
