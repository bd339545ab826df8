"""The built wheel works on its own (issue 24): it holds the template policy and database as
package data; a base install imports without any extra and its console script names the
extra it lacks in one line; `uv tool install 'magenta-release[cli]'` from the wheel gives a
standalone command that runs `init`, `demo`, `train` and `propose` outside this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.compat.conftest import ROOT, UV, requirement, uv

LOCK = ROOT / "requirements.lock"  # versions as tested by `make test`: the uv cache has them
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
QUIET |= {"DAGSTER_DISABLE_TELEMETRY": "true"}


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAGENTA_RELEASE_", "MLFLOW_"))}
    env |= QUIET
    env["PATH"] = f"{Path(cmd[0]).parent}:{env.get('PATH', '')}"
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_wheel_holds_the_template_and_the_entry_points(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for data in ("template/release-policy.toml", "template/mlflow.db", "py.typed"):
        assert f"magenta_release/{data}" in names, data
    assert "dagster_assets/resources.py" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    points = zipfile.ZipFile(wheel).read(entry).decode()
    assert "magenta-release = magenta_release.console:main" in points
    assert "magenta-release-auth = magenta_release.server.auth:create_app" in points
    assert "magenta_release = magenta_release.io.dataset_source:TableSource" in points


IMPORT_ALL = """
import importlib, pathlib, sys
import magenta_release
from magenta_release.core.extras import MissingExtra
root = pathlib.Path(magenta_release.__file__).parent
assert "site-packages" in str(root), root  # the installed wheel, not this checkout
bad = []
for p in sorted(root.rglob("*.py")):
    parts = p.relative_to(root.parent).with_suffix("").parts
    if parts[1:2] == ("cli",) or parts[-1] == "__main__":
        continue
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        importlib.import_module(name)
    except MissingExtra as exc:  # a module for an extra (magenta_release.dagster) says which
        if "pip install 'magenta-release[" not in str(exc):
            bad.append(f"{name}: {exc!r}")
    except Exception as exc:
        bad.append(f"{name}: {exc!r}")
print("\\n".join(bad) or "all imported")
"""


def test_a_base_install_imports_and_names_the_extras_it_lacks(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "base"
    uv("venv", "-q", "--python", "3.11", str(venv))
    python = str(venv / "bin" / "python")
    uv(
        "pip",
        "install",
        "-q",
        "--python",
        python,
        "-c",
        str(LOCK),
        f"magenta-release @ {wheel.as_uri()}",
    )
    found = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", python],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = {p["name"].lower() for p in json.loads(found.stdout)}
    heavy = {"dagster", "dagster-webserver", "gcsfs", "psycopg", "matplotlib", "flask", "typer"}
    assert not listed & heavy, listed & heavy
    assert {"mlflow-skinny", "scikit-learn", "skops", "pandas", "pandera"} <= listed
    done = run([python, "-c", IMPORT_ALL], tmp_path)
    assert done.stdout.strip() == "all imported", done.stdout + done.stderr[-2000:]
    cmd = run([str(venv / "bin" / "magenta-release"), "--help"], tmp_path)
    assert cmd.returncode == 2
    assert cmd.stderr.startswith("error: the magenta-release command needs typer")
    assert "magenta-release[cli]" in cmd.stderr and len(cmd.stderr.strip().splitlines()) == 1
    dagster = run([python, "-c", "import dagster_assets"], tmp_path)
    assert dagster.returncode == 1
    assert "dagster_assets (the Dagster integration) needs dagster" in dagster.stderr
    assert "magenta-release[dagster]" in dagster.stderr


@pytest.mark.slow
def test_uv_tool_install_gives_a_command_that_runs_the_release_loop(
    wheel: Path, tmp_path: Path
) -> None:
    tools, bin_dir = tmp_path / "tools", tmp_path / "bin"
    where = {"UV_TOOL_DIR": str(tools), "UV_TOOL_BIN_DIR": str(bin_dir)}
    uv(
        "tool",
        "install",
        "-q",
        "--python",
        "3.11",
        "-c",
        str(LOCK),
        requirement(wheel, "cli"),
        env=where,
    )
    command = bin_dir / "magenta-release"
    assert command.is_file()
    work = tmp_path / "team-repo"  # not this checkout: nothing here but what the wheel holds
    work.mkdir()
    init = run([str(command), "init", "--json"], work)
    assert init.returncode == 0, init.stderr[-2000:]
    assert (work / "mlruns" / "mlflow.db").is_file()
    assert "policy" in json.loads(init.stdout)
    demo = run([str(command), "demo"], work, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    train = run([str(command), "train", "--rows", "4000", "--seed", "5", "--json"], work)
    assert train.returncode == 0, train.stderr[-2000:]
    run_id = json.loads(train.stdout)["run_id"]
    propose = run([str(command), "propose", run_id, "--by", "data-scientist", "--json"], work)
    assert propose.returncode in (0, 1), propose.stderr[-2000:]  # 1: a gate said no
    proposal = json.loads(propose.stdout)
    assert proposal["version"] == 1 and proposal["gates"]
