"""`magenta-release ui` behaves like a process people can rely on: it says the URL only once
the server answers, refuses a busy port, and SIGTERM stops MLflow's workers too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.integration.services import free_port

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(cli: Cli, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v is not None}}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "magenta_release.cli", "ui", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def test_ui_reports_the_url_when_ready_and_sigterm_leaves_nothing_listening(
    cli: Cli, tmp_path: Path
) -> None:
    port = free_port()
    proc = _start(cli, port)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # MLflow's own start-up lines come first
            seen.append(line)
            if "MLflow UI on" in line or len(seen) > 200:
                break
        assert f"MLflow UI on http://127.0.0.1:{port}" in seen[-1], seen
        assert _listening(port)  # the URL is only said once the server answers
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    deadline = time.monotonic() + 10
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _listening(port), f"port {port} still listening after SIGTERM"


def test_a_busy_port_is_exit_2(cli: Cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("ui", "--port", str(port))
    assert result.exit_code == 2
    assert f"port {port} is in use" in result.stderr
