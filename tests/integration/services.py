"""Throwaway PostgreSQL and `mlflow server` processes on 127.0.0.1 for server-mode tests.

PostgreSQL refuses to run as root, so as root it runs as the `postgres` user. Every process is
started in its own session and stopped by process group, even when a test fails."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
ADMIN_PASSWORD = "admin-Secret-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    # Its own folder directly under the temp dir: pytest's tmp folders are 0700 root, which
    # the postgres user cannot enter.
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="magenta-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> Postgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o700)
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    opts,
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        for db in ("mlflow", "mlflow_auth"):
            self.create_db(db)
        return self

    def create_db(self, db: str) -> str:
        """Create database `db`; returns its SQLAlchemy URL."""
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    db,
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.url(db)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            ),
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


# What the deploy image sets (deploy/mlflow-server/Dockerfile): no AI Gateway (it stores provider
# keys and can send experiment data to providers outside the EU), no remote Assistant, no job
# runner, no telemetry.
SIDE_DOORS_OFF = {
    "MLFLOW_ENABLE_AI_GATEWAY": "false",
    "MLFLOW_ENABLE_REMOTE_ASSISTANT": "false",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


@dataclass
class MlflowServer:
    """`mlflow server` as the deploy image runs it: the magenta-release plugin app
    (`MAGENTA_RELEASE_AUTH` basic or iap, the server policy in `plugin_env`), one worker."""

    root: Path
    backend_uri: str
    auth_db_uri: str
    plugin_env: dict[str, str] = field(default_factory=dict)
    app_name: str = "magenta-release-auth"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        ini = self.root / "auth.ini"
        ini.write_text(
            "[mlflow]\n"
            "default_permission = EDIT\n"
            f"database_uri = {self.auth_db_uri}\n"
            "admin_username = admin\n"
            f"admin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = magenta_release.server.auth:authenticate\n"
            # Every request re-checks the password with PBKDF2 (~0.2 s of CPU) unless cached.
            "auth_cache_ttl_seconds = 60\n"
        )
        return {
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key-not-for-production",
            **SIDE_DOORS_OFF,
            **self.plugin_env,
        }

    def start(self, timeout: float = 90) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "server.log").open("wb")
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            (self.root / "artifacts").as_uri(),
            "--app-name",
            self.app_name,
            "--allowed-hosts",
            f"127.0.0.1:{self.port}",
            "--x-frame-options",
            "DENY",
        ]
        self.proc = subprocess.Popen(
            cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "mlflow server exited:\n" + (self.root / "server.log").read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            "mlflow server did not become healthy:\n"
            + (self.root / "server.log").read_text()[-3000:]
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
