"""The whole release loop through the CLI against a real PostgreSQL-backed `mlflow server`
with basic-auth: identities recorded, permissions and credentials turned into clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from magenta_release.demo import write_customers
from magenta_release.settings import TELEMETRY_OFF
from tests.conftest import SMALL, SMALL_DATA_GATES, invoke, write_policy
from tests.integration.conftest import ADMIN_PASSWORD, Server, as_admin

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]


class ServerCli:
    def __init__(self, server: Server, policy: Path) -> None:
        self.server = server
        self.policy = policy

    def __call__(self, *args: str, user: str, password: str | None = None) -> Any:
        env: dict[str, str | None] = {
            **TELEMETRY_OFF,
            **self.server.creds(user),
            "NO_COLOR": "1",
            "MLFLOW_TRACKING_URI": self.server.url,
            "MAGENTA_RELEASE_POLICY": str(self.policy),
            "MAGENTA_RELEASE_USER": None,
        }
        if password is not None:
            env["MLFLOW_TRACKING_PASSWORD"] = password
        return invoke(list(args), env)

    def json(self, *args: str, user: str, code: int = 0) -> Any:
        result = self(*args, "--json", user=user)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def cli(server: Server, tmp_path_factory: pytest.TempPathFactory) -> ServerCli:
    from magenta_release.store import TEMPLATE_DIR

    folder = tmp_path_factory.mktemp("policy")
    policy = folder / "release-policy.toml"
    policy.write_text((TEMPLATE_DIR / "release-policy.toml").read_text())
    write_policy(
        folder,
        approval={"approvers": ["alice"], "four_eyes": True},
        **SMALL_DATA_GATES,
    )
    return ServerCli(server, policy)


def test_release_loop_against_the_server(cli: ServerCli, tmp_path: Path) -> None:
    assert cli("init", user="carol").exit_code == 0
    a = cli.json(
        "train",
        "--rows",
        str(SMALL),
        "--seed",
        "7",
        "--param",
        "max_depth=3",
        "--by",
        "carol",
        user="carol",
    )
    b = cli.json(
        "train",
        "--rows",
        str(SMALL),
        "--seed",
        "7",
        "--param",
        "max_depth=4",
        "--by",
        "carol",
        user="carol",
    )
    compared = cli.json("compare", a["run_id"], b["run_id"], user="alice")
    assert [r["run_id"] for r in compared["runs"]] == [a["run_id"], b["run_id"]]

    v1 = cli.json("propose", a["run_id"], "--by", "carol", user="carol")
    assert v1["status"] == "pending_approval"
    # Removing an alias (clearing @challenger/@previous) needs MANAGE in MLflow's basic-auth:
    # an admin grants it to the approvers once (docs/architecture.md, "Permissions").
    _grant(cli.server, "alice", "churn-classifier", "MANAGE")
    # carol claims to be alice, but the server says she is carol: refused before any write
    spoof = cli(
        "approve", str(v1["version"]), "--reason", "x", "--yes", "--by", "alice", user="carol"
    )
    assert spoof.exit_code == 1 and "not the authenticated MLflow user carol" in spoof.stderr
    done = cli.json(
        "approve",
        str(v1["version"]),
        "--reason",
        "first release",
        "--yes",
        "--by",
        "alice",
        user="alice",
    )
    assert done["champion"] == v1["version"]

    v2 = cli.json("propose", b["run_id"], "--by", "carol", user="carol")
    assert v2["status"] == "pending_approval", v2["gates"]
    assert any(
        g["name"] == "no_regression_roc_auc" and "paired bootstrap" in g["detail"]
        for g in v2["gates"]
    )
    cli.json(
        "approve", str(v2["version"]), "--reason", "better", "--yes", "--by", "alice", user="alice"
    )

    customers = write_customers(tmp_path / "c.parquet", seed=9, rows=200)
    scored = cli.json(
        "predict", "--input", str(customers), "--output", str(tmp_path / "s.parquet"), user="alice"
    )
    assert scored["model_version"] == v2["version"] and scored["rows"] == 200

    back = cli.json("rollback", "--reason", "drill", "--yes", "--by", "alice", user="alice")
    assert back["champion"] == v1["version"]

    events = cli.json("history", user="alice")["events"]
    approvals = [e for e in events if e["action"] in {"approve", "rollback"}]
    assert {e["mlflow_user"] for e in approvals} == {"alice"}
    assert {e["mlflow_user"] for e in events if e["action"] == "propose"} == {"carol"}
    assert cli.json("audit", "verify", user="alice")["ok"] is True


def _grant(server: Server, user: str, model: str, permission: str) -> None:
    from mlflow.server import get_app_client

    with as_admin():
        get_app_client("basic-auth", tracking_uri=server.url).grant_user_permission(
            user, "registered_model", model, permission
        )


def test_init_against_a_server_starts_the_policy_from_the_template(
    cli: ServerCli, tmp_path: Path
) -> None:
    env: dict[str, str | None] = {
        **TELEMETRY_OFF,
        **cli.server.creds("carol"),
        "MLFLOW_TRACKING_URI": cli.server.url,
        "MAGENTA_RELEASE_HOME": str(tmp_path / "home"),
        "MAGENTA_RELEASE_POLICY": None,
    }
    result = invoke(["init", "--json"], env)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "home" / "release-policy.toml").exists()
    assert not (tmp_path / "home" / "mlflow.db").exists()  # no local store in server mode
    assert invoke(["status", "--json"], env).exit_code == 0


def test_wrong_password_is_a_clear_exit_4(cli: ServerCli) -> None:
    result = cli("status", user="alice", password="wrong")
    assert result.exit_code == 4
    assert result.stderr.startswith("error: ") and "MLFLOW_TRACKING_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_without_permission_is_refused_with_exit_1(cli: ServerCli, server: Server) -> None:

    assert cli("init", user="carol").exit_code == 0
    run = cli.json("train", "--rows", str(SMALL // 2), "--seed", "3", user="carol")
    assert cli("propose", run["run_id"], "--by", "carol", user="carol").exit_code in {0, 1}
    _grant(server, "mallory", "churn-classifier", "DENY")
    result = cli("status", user="mallory")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "the MLflow server refused it" in result.stderr and "Traceback" not in result.stderr


def test_tracking_host_outside_the_allow_list_exits_3(cli: ServerCli, tmp_path: Path) -> None:
    policy = tmp_path / "release-policy.toml"
    policy.write_text(cli.policy.read_text())
    write_policy(
        tmp_path,
        residency={
            "allowed_tracking_hosts": ["mlflow.magenta.internal"],
            "allowed_artifact_locations": ["mlflow-artifacts:"],
        },
    )
    strict = ServerCli(cli.server, policy)
    result = strict("train", "--rows", "500", user="carol")
    assert result.exit_code == 3 and "allowed_tracking_hosts" in result.stderr
    assert ADMIN_PASSWORD not in result.stderr
