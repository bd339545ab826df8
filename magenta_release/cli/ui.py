"""`ui`: the MLflow UI for the store on 127.0.0.1, and the supervisor that starts it in its own
process group and stops all of it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from magenta_release.cli.base import (
    UriOpt,
    app,
    connect,
    run_action,
    settings,
)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1024, max=65535)] = 5000,
    tracking_uri: UriOpt = None,
) -> None:
    """Open the MLflow UI for the store on 127.0.0.1 (telemetry, AI Gateway, remote Assistant
    and jobs off). Prints the URL once the server answers; Ctrl-C or SIGTERM stops it and all
    its workers."""
    import os

    chosen = settings(tracking_uri)
    uri = run_action(False, lambda: connect(tracking_uri))
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        uri,
        "--workers",
        "1",
        "--x-frame-options",
        "DENY",
    ]
    if chosen.is_local:
        cmd += ["--default-artifact-root", chosen.artifact_root.as_uri()]
    if not _port_free(port):
        typer.echo(f"error: port {port} is in use; choose another with --port", err=True)
        raise typer.Exit(2)
    # Started as the deploy image starts it: no AI Gateway (it stores provider keys and can
    # send experiment data to model providers outside the EU), no remote Assistant, no jobs.
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_ENABLE_AI_GATEWAY": "false",
        "MLFLOW_ENABLE_REMOTE_ASSISTANT": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    raise typer.Exit(_serve(cmd, env, port))


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(cmd: list[str], env: dict[str, str], port: int) -> int:
    """Run the server in its own process group; say the URL once it answers; stop the whole
    group (MLflow's workers included) on Ctrl-C or SIGTERM, leaving nothing listening."""
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310
                    typer.echo(f"MLflow UI on {url} (Ctrl-C to stop)", err=True)
                    break
            except OSError:
                time.sleep(0.3)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
