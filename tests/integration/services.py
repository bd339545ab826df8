"""Throwaway PostgreSQL and `mlflow server` processes on 127.0.0.1 for server-mode tests.

PostgreSQL refuses to run as root, so as root it runs as the `postgres` user. Every process is
started in its own session and stopped by process group, even when a test fails."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # the deploy image uses READ (deploy/mlflow-server/entrypoint.sh); the shared test server EDIT
    default_permission: str = "EDIT"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        ini = self.root / "auth.ini"
        ini.write_text(
            "[mlflow]\n"
            f"default_permission = {self.default_permission}\n"
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


# ---- IAP, as the tests stand it in -------------------------------------------------------------
IAP_ISSUER = "https://cloud.google.com/iap"
GOOGLE_ISSUER = "https://accounts.google.com"


class Signer:
    """An EC P-256 key that signs ES256 tokens, and its public JWKS."""

    def __init__(self, kid: str) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, object]:
        import json

        from jwt.algorithms import ECAlgorithm

        jwk: dict[str, object] = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def sign(self, claims: dict[str, object], ttl: float = 600) -> str:
        import jwt

        now = int(time.time())
        body = {"iat": now, "exp": now + int(ttl), **claims}
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Background:
    """A stdlib HTTP server on 127.0.0.1 in a daemon thread."""

    server: http.server.ThreadingHTTPServer
    thread: threading.Thread

    @classmethod
    def start(cls, handler: type[http.server.BaseHTTPRequestHandler]) -> Background:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return cls(server, thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def serve_jwks(*signers: Signer) -> Background:
    """The JWKS endpoint IAP publishes (https://www.gstatic.com/iap/verify/public_key-jwk)."""
    import json

    body = json.dumps({"keys": [s.jwk() for s in signers]}).encode()

    class Handler(_Quiet):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Background.start(Handler)


@dataclass
class IapProxy:
    """Stands in for IAP in front of the server: it checks the caller's OIDC ID token in
    `Proxy-Authorization` (signed by `google`, audience `client_id`), drops the headers a caller
    must not forge, and forwards the request with an assertion for the caller's e-mail
    (`mint`, by default signed by `iap` for `audience`). Like Cloud Run's front end, it says
    the caller is remote (X-Forwarded-For)."""

    upstream: str
    google: Signer
    client_id: str
    mint: Any = None
    background: Background | None = None

    def start(self) -> IapProxy:
        proxy = self

        class Handler(_Quiet):
            def _forward(self) -> None:
                import jwt

                auth = self.headers.get("Proxy-Authorization", "")
                try:
                    claims = jwt.decode(
                        auth.removeprefix("Bearer "),
                        proxy.google.key.public_key(),
                        algorithms=["ES256"],
                        audience=proxy.client_id,
                        issuer=GOOGLE_ISSUER,
                    )
                except jwt.PyJWTError:
                    self._reply(401, {}, b"IAP: invalid or missing ID token")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                drop = {"proxy-authorization", "x-goog-iap-jwt-assertion", "host"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
                headers["x-goog-iap-jwt-assertion"] = proxy.mint(claims["email"])
                headers["X-Forwarded-For"] = "203.0.113.7"
                req = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(req, timeout=120) as r:
                        self._reply(r.status, dict(r.headers), r.read())
                except urllib.error.HTTPError as e:
                    self._reply(e.code, dict(e.headers), e.read())

            def _reply(self, code: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    if k.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

        self.background = Background.start(Handler)
        return self

    @property
    def url(self) -> str:
        assert self.background is not None
        return self.background.url

    def stop(self) -> None:
        if self.background is not None:
            self.background.stop()
