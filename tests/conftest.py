"""Shared fixtures: real SQLite MLflow stores under tmp_path, the real CLI through CliRunner."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from magenta_release.settings import TELEMETRY_OFF

os.environ.update(TELEMETRY_OFF)
SMALL = 4000  # accounts per training run in tests: enough churners for stable metrics


@dataclass
class Cli:
    """Runs `magenta-release` in-process against one store."""

    home: Path
    env: dict[str, str | None]

    def __call__(self, *args: str, by: str | None = None, input: str | None = None) -> Any:
        from magenta_release.cli import app

        env = dict(self.env)
        if by:
            env["MAGENTA_RELEASE_USER"] = by
        result = CliRunner().invoke(app, list(args), env=env, input=input,
                                    catch_exceptions=False)
        return result

    def json(self, *args: str, by: str | None = None, code: int = 0) -> Any:
        result = self(*args, "--json", by=by)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        return json.loads(result.stdout)


def make_cli(home: Path) -> Cli:
    return Cli(home, {"MAGENTA_RELEASE_HOME": str(home), "MLFLOW_TRACKING_URI": None,
                      "MAGENTA_RELEASE_POLICY": None, "NO_COLOR": "1", **TELEMETRY_OFF})


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A CLI bound to a fresh, initialised store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MAGENTA_RELEASE_POLICY", raising=False)
    runner = make_cli(tmp_path / "mlruns")
    assert runner("init").exit_code == 0
    return runner


@pytest.fixture
def settings(cli: Cli) -> Any:
    from magenta_release.settings import Settings

    return Settings(home=cli.home)


@pytest.fixture
def store(settings: Any) -> Iterator[Any]:
    from magenta_release.store import Store

    yield Store.open(settings)


def write_policy(home: Path, **sections: dict[str, Any]) -> Path:
    """Rewrite the store's policy with some sections replaced (TOML written by hand)."""
    import tomllib

    path = home / "release-policy.toml"
    data = tomllib.loads(path.read_text())
    for name, values in sections.items():
        target = data
        for part in name.split("."):
            target = target.setdefault(part, {})
        target.clear()
        target.update(values)
    path.write_text(_toml(data))
    return path


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    out = [f"[{prefix}]"] if prefix and (scalars or not tables) else []
    out += [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]
    text = "\n".join(out) + "\n"
    for k, v in tables.items():
        text += _toml(v, f"{prefix}.{k}" if prefix else k)
    return text
