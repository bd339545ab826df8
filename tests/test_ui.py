"""`magenta-release ui` behaves like a process people can rely on: it says the URL only once
the server answers, refuses a busy port, and SIGTERM stops MLflow's workers too; and the page
it names, opened in a real browser (headless Chromium), has no MLflow Assistant and no
telemetry notice (issue 25 item 9)."""

from __future__ import annotations

import os
import shutil
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


def _url(proc: subprocess.Popen[str]) -> str:
    """The URL `ui` says, once it says it (MLflow's own start-up lines come first)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "MLflow UI on" in line or len(seen) > 200:
            break
    assert "MLflow UI on http://" in seen[-1], seen
    return seen[-1].split("MLflow UI on ", 1)[1].split(" ", 1)[0]


def test_ui_reports_the_url_when_ready_and_sigterm_leaves_nothing_listening(
    cli: Cli, tmp_path: Path
) -> None:
    port = free_port()
    proc = _start(cli, port)
    try:
        url = _url(proc)
        assert url.startswith(f"http://mlflow.localhost:{port}/#/experiments/"), url
        assert url.endswith("/runs"), url  # the model's training runs
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


def _page_text(url: str, tmp_path: Path) -> str:
    """The text of the page as headless Chromium renders it (MLflow's UI is a script)."""
    import html
    import re

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (apt-get install -y chromium)")
    dom = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def test_the_page_ui_opens_has_no_assistant_and_no_telemetry_notice(
    cli: Cli, tmp_path: Path
) -> None:
    """Checked in a real browser: the page `ui` names shows the model's training runs, with no
    MLflow Assistant and no UI-telemetry notice; the Assistant's routes answer 404 whatever the
    host. Positive control: the same server, opened as MLflow's own docs open it (127.0.0.1, the
    home page), does show both, so the check can fail."""
    import urllib.error
    import urllib.request

    port = free_port()
    proc = _start(cli, port)
    try:
        url = _url(proc)
        shown = _page_text(url, tmp_path)
        assert "Training runs" in shown, shown[:2000]
        assert "Assistant" not in shown and "telemetry" not in shown.lower(), shown[:2000]
        home = _page_text(f"http://127.0.0.1:{port}/", tmp_path)
        assert "MLflow Assistant" in home and "telemetry" in home.lower(), home[:2000]
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/ajax-api/3.0/mlflow/assistant/message",
            data=b"{}",
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=30)
        assert info.value.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
