"""Restore drill, for real: release to an approved @champion on PostgreSQL + `mlflow server`,
back up the database (`pg_dump`) and the artifact folder, destroy both, restore them, start a
new server on the restored database, and show that nothing was lost.

It runs on the session's PostgreSQL cluster with databases and a server of its own, so the
shared session server other tests use is never touched. The timings it prints are quoted in
docs/reliability.md ("Restore drill")."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from magenta_release.cli.demo import write_customers
from tests.conftest import ALICE, CAROL, SMALL, SMALL_DATA_GATES, Cli, make_server_cli, write_policy
from tests.integration.conftest import USERS, Server, as_admin
from tests.integration.services import PG_BIN, MlflowServer, Postgres, _as_postgres

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group(name="server")]

DATABASES = ("drill", "drill_auth")  # tracking + registry + audit log, and basic-auth users


def _pg(pg: Postgres, tool: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """A PostgreSQL client tool of the cluster's own version, as the `postgres` user."""
    cmd = [str(PG_BIN / tool), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", *args]
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        _as_postgres(cmd), check=True, stderr=subprocess.PIPE, timeout=300, **kwargs
    )


def _databases(pg: Postgres) -> set[str]:
    out = _pg(pg, "psql", "-At", "-c", "SELECT datname FROM pg_database", "postgres").stdout
    return set(out.decode().split())


def _start(root: Path, pg: Postgres) -> MlflowServer:
    """The drill's own server, run as the session's is: the plugin in basic mode (the rules
    come from the stored policy in its own log)."""
    return MlflowServer(
        root,
        pg.url(DATABASES[0]),
        pg.url(DATABASES[1]),
        plugin_env={"MAGENTA_RELEASE_AUTH": "basic"},
    ).start()


def _grant(url: str, user: str, model: str, permission: str) -> None:
    from mlflow.server import get_app_client

    with as_admin():
        get_app_client("basic-auth", tracking_uri=url).grant_user_permission(
            user, "registered_model", model, permission
        )


def _release(cli: Cli, url: str) -> int:
    """train -> propose (carol) -> approve (alice, another person): version 1 is @champion."""
    assert cli("init", by="admin").exit_code == 0
    run = cli.json("train", "--rows", str(SMALL), "--seed", "11", "--by", CAROL, by=CAROL)
    proposed = cli.json("propose", run["run_id"], "--by", CAROL, by=CAROL)
    assert proposed["status"] == "pending_approval", proposed["gates"]
    _grant(url, ALICE, "churn-classifier", "MANAGE")  # clears @challenger
    done = cli.json(
        "approve",
        str(proposed["version"]),
        "--reason",
        "restore drill",
        "--yes",
        "--by",
        ALICE,
        by=ALICE,
    )
    assert done["champion"] == proposed["version"]
    return int(proposed["version"])


def _evidence(cli: Cli, customers: Path, scores: Path) -> dict[str, Any]:
    """What a restore must preserve, as the tool reports it."""
    status = cli.json("status", by=ALICE)
    status.pop("dead_runs", None)
    return {
        "status": status,
        "events": cli.json("history", by=ALICE)["events"],
        "audit": cli.json("audit", "verify", by=ALICE),
        "predict": cli.json(
            "predict", "--input", str(customers), "--output", str(scores), by=ALICE
        ),
    }


def test_backup_destroy_restore(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from magenta_release.io.store import TEMPLATE_DIR

    pg = server.postgres
    assert not set(DATABASES) & _databases(pg)
    for db in DATABASES:
        _pg(pg, "createdb", db)
    live = tmp_path / "live"  # the server's root; its artifacts are live/artifacts
    backup = tmp_path / "backup"
    backup.mkdir()
    policy = tmp_path / "policy" / "release-policy.toml"
    policy.parent.mkdir()
    policy.write_text((TEMPLATE_DIR / "release-policy.toml").read_text())
    write_policy(
        policy.parent, approval={"approvers": ["alice"], "four_eyes": True}, **SMALL_DATA_GATES
    )
    customers = write_customers(tmp_path / "customers.parquet", seed=5, rows=300)

    srv = _start(live, pg)
    try:
        from mlflow.server import get_app_client

        with as_admin():
            auth = get_app_client("basic-auth", tracking_uri=srv.url)
            for user, password in USERS.items():
                auth.create_user(user, password)
        cli = make_server_cli(srv.url, policy, Server(srv.url, pg, live).creds)
        champion = _release(cli, srv.url)
        before = _evidence(cli, customers, tmp_path / "before.parquet")
        assert before["status"]["champion"]["version"] == champion
        assert before["audit"]["ok"] is True and before["predict"]["model_version"] == champion

        # Backup: a consistent dump of each database while the server runs, then the artifacts.
        t0 = time.perf_counter()
        for db in DATABASES:
            with (backup / f"{db}.dump").open("wb") as out:
                _pg(pg, "pg_dump", "--format=custom", "--no-owner", db, stdout=out)
        shutil.copytree(live / "artifacts", backup / "artifacts")
        backup_s = time.perf_counter() - t0
    finally:
        srv.stop()

    # Disaster: the databases and the artifact folder are gone.
    for db in DATABASES:
        _pg(pg, "dropdb", db)
    shutil.rmtree(live / "artifacts")
    assert not set(DATABASES) & _databases(pg) and not (live / "artifacts").exists()

    # Restore: empty databases, the dumps, the artifacts back in place, a new server process.
    t1 = time.perf_counter()
    for db in DATABASES:
        _pg(pg, "createdb", db)
        with (backup / f"{db}.dump").open("rb") as dump:
            _pg(pg, "pg_restore", "--no-owner", "--exit-on-error", "-d", db, stdin=dump)
    db_s = time.perf_counter() - t1
    shutil.copytree(backup / "artifacts", live / "artifacts")
    restored = _start(live, pg)
    restore_s = time.perf_counter() - t1
    try:
        assert restored.port != srv.port  # really a new server, not the old one answering
        cli = make_server_cli(restored.url, policy, Server(restored.url, pg, live).creds)
        after = _evidence(cli, customers, tmp_path / "after.parquet")
        assert after["audit"]["ok"] is True
        assert after["audit"]["events"] == before["audit"]["events"]
        assert json.dumps(after["status"], sort_keys=True) == json.dumps(
            before["status"], sort_keys=True
        )
        assert after["events"] == before["events"]
        assert {k: v for k, v in after["predict"].items() if k != "output"} == {
            k: v for k, v in before["predict"].items() if k != "output"
        }
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "after.parquet"),
            pd.read_parquet(tmp_path / "before.parquet"),
        )
    finally:
        restored.stop()
        for db in DATABASES:
            _pg(pg, "dropdb", "--if-exists", db)

    size_kb = sum(f.stat().st_size for f in backup.rglob("*") if f.is_file()) / 1024
    with capsys.disabled():
        print(
            f"\nrestore drill: backup {backup_s:.2f} s ({size_kb:.0f} KB: 2 dumps + artifacts); "
            f"restore {restore_s:.2f} s (databases {db_s:.2f} s, then artifacts and a new "
            "mlflow server until /health answers)"
        )
