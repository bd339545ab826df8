"""The command line as a process: fast help, no mlflow at import, telemetry off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Cli, telemetry_free_env

CLEAN_ENV = telemetry_free_env()


def _python(code: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or CLEAN_ENV,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_help_does_not_import_mlflow(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom magenta_release import cli\nsys.argv = ['magenta-release', "
        "'--help']\ntry:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print('\\nIMPORTED', sorted(m for m in ('mlflow', 'sklearn', 'xgboost', 'pandas') "
        "if m in sys.modules))"
    )
    out = _python(code, tmp_path)
    assert "compare" in out
    assert "train" in out
    assert out.splitlines()[-1] == "IMPORTED []"


def test_cli_run_disables_mlflow_telemetry(tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "MAGENTA_RELEASE_HOME": str(tmp_path / "s")}
    code = (
        "import sys\nfrom magenta_release import cli\nsys.argv = ['magenta-release', 'init']"
        "\ntry:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "from mlflow.telemetry.client import get_telemetry_client, is_telemetry_disabled\n"
        "import os\nprint('\\nTELEMETRY', is_telemetry_disabled(), get_telemetry_client(), "
        "os.environ['DO_NOT_TRACK'])"
    )
    out = _python(code, tmp_path, env)
    assert out.splitlines()[-1] == "TELEMETRY True None true"


def test_every_command_has_help(cli: Cli) -> None:
    from magenta_release.cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands if c.callback]
    assert {"init", "train", "runs", "compare", "ui"} <= set(names)
    for name in names:
        result = cli(name, "--help")
        assert result.exit_code == 0
        assert "--json" in result.stdout or name in {"ui", "demo"}


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("frobnicate")
    assert result.exit_code == 2
