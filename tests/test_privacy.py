"""Privacy: the store holds no customer identifiers after the whole demo loop, and every
entry point switches MLflow and Dagster telemetry off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from magenta_release import data
from tests.conftest import telemetry_free_env
from tests.privacy import leaked_identifiers, store_text

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_leaves_no_customer_identifiers_in_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magenta_release.demo import run_demo
    from magenta_release.settings import Settings

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
    instance = yaml.safe_load((ROOT / "dagster_home" / "dagster.yaml").read_text())
    assert instance["telemetry"]["enabled"] is False
    makefile = (ROOT / "Makefile").read_text()
    assert "export DAGSTER_DISABLE_TELEMETRY := true" in makefile
    assert "DAGSTER_HOME=$(CURDIR)/dagster_home" in makefile


def test_server_start_scripts_disable_telemetry() -> None:
    from tests.integration.services import MlflowServer

    env = MlflowServer(Path("/tmp/x"), "sqlite://", "sqlite://").env
    assert callable(env)
    dockerfile = (ROOT / "deploy" / "mlflow-server" / "Dockerfile").read_text()
    assert "MLFLOW_DISABLE_TELEMETRY=true" in dockerfile and "DO_NOT_TRACK=true" in dockerfile
    services = (ROOT / "tests" / "integration" / "services.py").read_text()
    assert '"MLFLOW_DISABLE_TELEMETRY": "true"' in services
    ci = (ROOT / ".ci" / "run").read_text()
    assert "MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true DAGSTER_DISABLE_TELEMETRY=true" in ci
