"""The whole release loop through the CLI against a real PostgreSQL-backed `mlflow server`
with basic-auth: identities recorded, permissions and credentials turned into clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magenta_release.cli.demo import write_customers
from magenta_release.core.settings import TELEMETRY_OFF
from tests.conftest import (
    ALICE,
    CAROL,
    MALLORY,
    SMALL,
    SMALL_DATA_GATES,
    Cli,
    invoke,
    make_server_cli,
    write_policy,
)
from tests.integration.conftest import Server, as_admin
from tests.integration.services import ADMIN_PASSWORD

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]


@pytest.fixture(scope="module")
def cli(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    from magenta_release.io.store import TEMPLATE_DIR

    folder = tmp_path_factory.mktemp("policy")
    policy = folder / "release-policy.toml"
    policy.write_text((TEMPLATE_DIR / "release-policy.toml").read_text())
    write_policy(
        folder,
        approval={"approvers": [ALICE], "policy_owners": [ALICE], "four_eyes": True},
        **SMALL_DATA_GATES,
    )
    return make_server_cli(server.url, policy, server.creds)


def test_release_loop_against_the_server(cli: Cli, server: Server, tmp_path: Path) -> None:
    assert cli("init", by="admin").exit_code == 0
    a = cli.json(
        "train",
        "--rows",
        str(SMALL),
        "--seed",
        "7",
        "--param",
        "max_depth=3",
        "--by",
        CAROL,
        by=CAROL,
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
        CAROL,
        by=CAROL,
    )
    compared = cli.json("compare", a["run_id"], b["run_id"], by=ALICE)
    assert [r["run_id"] for r in compared["runs"]] == [a["run_id"], b["run_id"]]

    v1 = cli.json("propose", a["run_id"], "--by", CAROL, by=CAROL)
    assert v1["status"] == "pending_approval"
    # Removing an alias (clearing @challenger/@previous) needs MANAGE in MLflow's basic-auth:
    # an admin grants it to the approvers once (docs/architecture.md, "Permissions").
    _grant(server, ALICE, "churn-classifier", "MANAGE")
    # carol claims to be alice, but the server says she is carol: refused before any write
    spoof = cli("approve", str(v1["version"]), "--reason", "x", "--yes", "--by", ALICE, by=CAROL)
    assert spoof.exit_code == 1 and "not the authenticated MLflow user carol" in spoof.stderr
    done = cli.json(
        "approve",
        str(v1["version"]),
        "--reason",
        "first release",
        "--yes",
        "--by",
        ALICE,
        by=ALICE,
    )
    assert done["champion"] == v1["version"]

    v2 = cli.json("propose", b["run_id"], "--by", CAROL, by=CAROL)
    assert v2["status"] == "pending_approval", v2["gates"]
    assert any(
        g["name"] == "no_regression_roc_auc" and "paired bootstrap" in g["detail"]
        for g in v2["gates"]
    )
    cli.json("approve", str(v2["version"]), "--reason", "better", "--yes", "--by", ALICE, by=ALICE)

    customers = write_customers(tmp_path / "c.parquet", seed=9, rows=200)
    scored = cli.json(
        "predict", "--input", str(customers), "--output", str(tmp_path / "s.parquet"), by=ALICE
    )
    assert scored["model_version"] == v2["version"] and scored["rows"] == 200

    back = cli.json("rollback", "--reason", "drill", "--yes", "--by", ALICE, by=ALICE)
    assert back["champion"] == v1["version"]

    events = cli.json("history", by=ALICE)["events"]
    approvals = [e for e in events if e["action"] in {"approve", "rollback"}]
    assert {e["mlflow_user"] for e in approvals} == {ALICE}
    assert {e["mlflow_user"] for e in events if e["action"] == "propose"} == {CAROL}
    assert cli.json("audit", "verify", by=ALICE)["ok"] is True


def _grant(server: Server, user: str, model: str, permission: str) -> None:
    from mlflow.server import get_app_client

    with as_admin():
        get_app_client("basic-auth", tracking_uri=server.url).grant_user_permission(
            user, "registered_model", model, permission
        )


def test_init_against_a_server_stores_the_policy_there(server: Server, tmp_path: Path) -> None:
    from magenta_release.io.store import TEMPLATE_DIR

    policy = tmp_path / "policy" / "release-policy.toml"
    policy.parent.mkdir()
    policy.write_text(
        (TEMPLATE_DIR / "release-policy.toml")
        .read_text()
        .replace('registered_name = "churn-classifier"', 'registered_name = "init-check"')
        .replace('experiment = "churn"', 'experiment = "init-check"')  # one per model
    )
    env: dict[str, str | None] = {
        **TELEMETRY_OFF,
        **server.creds("admin"),  # on a server only an MLflow admin stores a first policy
        "MLFLOW_TRACKING_URI": server.url,
        "MAGENTA_RELEASE_HOME": str(tmp_path / "home"),
        "MAGENTA_RELEASE_POLICY": str(policy),
    }
    result = invoke(["init", "--json"], env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "init-check"
    assert not (tmp_path / "home").exists()  # no local store, no local policy in server mode
    # the file is only init's input: the server holds the text and its history from now on
    written = policy.read_text()
    policy.unlink()
    shown = json.loads(invoke(["policy", "show", "--model", "init-check", "--json"], env).stdout)
    assert shown["toml"] == written
    assert shown["version"] == 1 and shown["set_by"] == "admin"
    status = invoke(["status", "--model", "init-check", "--json"], env)
    assert status.exit_code == 0, status.stderr


def test_wrong_password_is_a_clear_exit_4(cli: Cli) -> None:
    result = cli("status", by=ALICE, env={"MLFLOW_TRACKING_PASSWORD": "wrong"})
    assert result.exit_code == 4
    assert result.stderr.startswith("error: ") and "MLFLOW_TRACKING_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_without_permission_is_refused_with_exit_1(cli: Cli, server: Server) -> None:

    assert cli("init", by="admin").exit_code == 0
    run = cli.json("train", "--rows", str(SMALL // 2), "--seed", "3", by=CAROL)
    assert cli("propose", run["run_id"], "--by", CAROL, by=CAROL).exit_code in {0, 1}
    _grant(server, MALLORY, "churn-classifier", "DENY")
    result = cli("status", by=MALLORY)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "the MLflow server refused it" in result.stderr and "Traceback" not in result.stderr


def test_tracking_host_outside_the_allow_list_exits_3(
    cli: Cli, server: Server, tmp_path: Path
) -> None:
    assert cli("init", by="admin").exit_code == 0
    policy = tmp_path / "release-policy.toml"
    policy.write_text((cli.home / "release-policy.toml").read_text())
    write_policy(
        tmp_path,
        residency={
            "allowed_tracking_hosts": ["mlflow.magenta.internal"],
            "allowed_artifact_locations": ["mlflow-artifacts:"],
        },
    )
    before = cli.json("policy", "history", by=ALICE)
    # the owner cannot store a policy this server already breaks: exit 3, nothing stored
    result = cli("policy", "set", str(policy), "--reason", "move", by=ALICE)
    assert result.exit_code == 3 and "allowed_tracking_hosts" in result.stderr
    assert ADMIN_PASSWORD not in result.stderr
    assert cli.json("policy", "history", by=ALICE) == before
