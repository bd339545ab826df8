"""`ui`: the MLflow UI for the store on 127.0.0.1, and the supervisor that starts it in its own
process group and stops all of it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from magenta_release.cli.base import (
    ModelOpt,
    UriOpt,
    app,
    connect,
    run_action,
    settings,
)

# A host the MLflow UI bundle does not call local (it offers the Assistant to localhost,
# 127.0.0.1 and ::1); browsers resolve every *.localhost name to the loopback address.
UI_HOST = "mlflow.localhost"


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1024, max=65535)] = 5000,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
) -> None:
    """Open the MLflow UI for the store on 127.0.0.1, on the model's training runs: telemetry
    (the UI's too), AI Gateway, the MLflow Assistant (remote and local) and jobs off. Prints
    the URL once the server answers; Ctrl-C or SIGTERM stops it and all its workers."""
    import os

    chosen = settings(tracking_uri)
    uri = run_action(False, lambda: connect(tracking_uri))
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
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
        # MLflow's UI and API without the Assistant's routes and UI telemetry (server/ui.py)
        "--app-name",
        "magenta-release-ui",
        "--allowed-hosts",
        f"{UI_HOST}:{port},127.0.0.1:{port},localhost:{port}",
        "--cors-allowed-origins",
        f"http://{UI_HOST}:{port},http://127.0.0.1:{port},http://localhost:{port}",
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
    raise typer.Exit(_serve(cmd, env, port, _training_view(tracking_uri, model_name)))


def _training_view(tracking_uri: str | None, model: str | None) -> str:
    """The page the UI opens on: the model's training runs (MLflow's model-training view of its
    experiment), or the list of experiments when no one model can be named; not the home
    page, which carries MLflow's telemetry notice."""
    from magenta_release.cli.base import open_context
    from magenta_release.core.errors import ReleaseError

    try:
        return f"#/experiments/{open_context(tracking_uri, model).runs.experiment_id()}/runs"
    except ReleaseError:
        return "#/experiments"


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(cmd: list[str], env: dict[str, str], port: int, view: str) -> int:
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
                    typer.echo(
                        f"MLflow UI on http://{UI_HOST}:{port}/{view} (Ctrl-C to stop; served "
                        f"on {url})",
                        err=True,
                    )
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
