"""The team's environment at the floors (issue 24, `make test-compat`): a Python 3.11 venv with
the team's pins at their lowest (team-floor.txt); `uv pip install --dry-run` of the local wheel
with `[dagster]` must change none of what is installed; then the wheel goes in with every
dependency of the base install and `[dagster]` at the floor pyproject.toml states, and the
tests of the base install, the Dagster integration and bring-your-own runs run there (pandas
2.2, scikit-learn 1.5.2, xgboost 2.1, dagster 1.9; `make test` runs the same tests at the top of
every range, pandas 3 included)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from tests.compat.conftest import HERE, ROOT, UV, project, requirement, uv

# What the job runs inside the team's environment.
TESTS = [
    "tests/core",
    "tests/io",
    "tests/test_bring_your_own.py",
    "tests/dagster_assets",
    "tests/test_real_data.py",
    "tests/test_bad_data.py",
]
# Test tools (and the CLI pieces the fixtures drive in-process), at the dev lock's versions.
TOOLS = ["pytest", "pytest-xdist", "typer", "rich", "matplotlib", "tomli-w"]


def floors() -> dict[str, str]:
    """{distribution: lowest version} of the base install and `[dagster]` (pyproject.toml)."""
    meta: dict[str, Any] = project()
    deps: list[str] = [*meta["dependencies"], *meta["optional-dependencies"]["dagster"]]
    out = {}
    for line in deps:
        req = Requirement(line)
        low = [s.version for s in req.specifier if s.operator == ">="]
        if low:
            out[req.name] = low[0]
    return out


def locked(names: list[str]) -> list[str]:
    """`name==version` for `names` as requirements-dev.lock pins them."""
    text = (ROOT / "requirements-dev.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", text, flags=re.M))
    return [f"{n}=={pins[n]}" for n in names]


def versions(python: str) -> dict[str, str]:
    done = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", python],
        capture_output=True,
        text=True,
        check=True,
    )
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout)}


def test_the_teams_floor_environment_runs_the_base_and_dagster_tests(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "team"
    uv("venv", "-q", "--python", "3.11", str(venv))
    python = str(venv / "bin" / "python")
    uv("pip", "install", "-q", "--python", python, "-r", str(HERE / "team-floor.txt"))
    before = versions(python)

    plan = uv("pip", "install", "--dry-run", "--python", python, requirement(wheel, "dagster"))
    changed = [line for line in plan.splitlines() if line.startswith(" - ")]
    assert changed == [], f"magenta-release[dagster] would change: {changed}"
    assert " + magenta-release" in plan

    constraints = tmp_path / "floors.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in floors().items()))
    uv(
        "pip", "install", "-q", "--python", python, "-r", str(HERE / "team-floor.txt"),
        "-c", str(constraints), requirement(wheel, "dagster"), *locked(TOOLS),
    )  # fmt: skip
    after = versions(python)
    for name in ("dagster", "pandas", "scikit-learn", "xgboost", "pyarrow", "pydantic", "duckdb"):
        assert after[name] == before[name], name  # the team's pins, as they were
    for name, low in floors().items():  # every dependency at the floor pyproject.toml states
        assert Version(after[name.lower()]) == Version(low), (name, after[name.lower()], low)
    assert "xgboost-cpu" not in after

    env = {k: v for k, v in os.environ.items() if k != "MAGENTA_RELEASE_COMPAT"}
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile",
         *TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout.splitlines()[-1]), done.stdout[-500:]
