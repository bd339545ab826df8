"""Privacy: the store holds no customer identifiers after the whole demo loop, and every
entry point switches MLflow and Dagster telemetry off."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from magenta_release.core import synthetic as data
from magenta_release.core.settings import TELEMETRY_OFF
from tests.conftest import telemetry_free_env
from tests.privacy import leaked_identifiers, store_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_leaves_no_customer_identifiers_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magenta_release.cli.demo import run_demo
    from magenta_release.core.settings import Settings

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "demo" / "mlruns"
    rows = 3000
    run_demo(Settings(), rows=rows, home=home)
    scored = pd.read_parquet(tmp_path / "demo" / "predictions.parquet")
    assert scored["rating_account_id"].notna().all()  # ids exist outside the store...
    assert "churn-classifier" in store_text(home)  # ...and the scan reads the store
    for population in (data.generate(42, rows).accounts, data.generate(2024, 10_000).accounts):
        customers, ids = leaked_identifiers(home, population)
        assert not customers, sorted(customers)[:5]
        assert not ids, sorted(ids)[:5]


def test_dagster_code_location_disables_telemetry(tmp_path: Path) -> None:
    code = (
        "import os\nimport dagster_assets\n"
        "from mlflow.telemetry.client import is_telemetry_disabled\n"
        "print(os.environ['DAGSTER_DISABLE_TELEMETRY'], os.environ['DO_NOT_TRACK'], "
        "is_telemetry_disabled())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=telemetry_free_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert out.stdout.split()[-3:] == ["true", "true", "True"]
    # `make dagster` points Dagster at the instance whose settings switch telemetry off
    instance = yaml.safe_load((ROOT / "dagster_home" / "dagster.yaml").read_text())
    assert instance["telemetry"]["enabled"] is False
    dry_run = subprocess.run(
        ["make", "-n", "dagster"],
        env=telemetry_free_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"DAGSTER_HOME={ROOT}/dagster_home " in dry_run


def test_every_make_target_runs_with_telemetry_off(tmp_path: Path) -> None:
    """The environment of a recipe, as make gives it to every target (people, hooks and CI
    all go through the Makefile)."""
    probe = tmp_path / "probe.mk"
    probe.write_text("probe:\n\t@env\n")
    out = subprocess.run(
        ["make", "-s", "-f", "Makefile", "-f", str(probe), "probe"],
        env=telemetry_free_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert {k: seen.get(k) for k in TELEMETRY_OFF} == TELEMETRY_OFF


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_ui_starts_mlflow_with_telemetry_and_side_doors_off(tmp_path: Path) -> None:
    """`magenta-release ui`, started from an environment without the switches: the MLflow
    process it starts has them."""
    env = {**telemetry_free_env(), "MAGENTA_RELEASE_HOME": str(tmp_path / "mlruns")}
    env.pop("MLFLOW_TRACKING_URI", None)
    tool = Path(sys.executable).parent / "magenta-release"
    subprocess.run([tool, "init"], env=env, capture_output=True, timeout=180, check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ui = subprocess.Popen(
        [tool, "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        child: dict[str, str] = {}
        for _ in range(600):  # a wait for the child to exist, not a timing assertion
            pids = _children(ui.pid)
            if pids:
                child = _environ(pids[0])
                break
            assert ui.poll() is None, "magenta-release ui exited before starting MLflow"
            time.sleep(0.2)
        assert child, "magenta-release ui started no MLflow process"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    assert {k: child.get(k) for k in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")} == {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    assert child.get("MLFLOW_ENABLE_AI_GATEWAY") == "false"
    assert child.get("MLFLOW_ENABLE_REMOTE_ASSISTANT") == "false"


def test_test_servers_start_with_telemetry_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment the server-mode tests start `mlflow server` with (the image's own
    switches are checked in test_deploy.py)."""
    from tests.integration.services import MlflowServer

    for key in TELEMETRY_OFF:
        monkeypatch.delenv(key, raising=False)
    env = MlflowServer(tmp_path, "sqlite://", "sqlite://").env()
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"
