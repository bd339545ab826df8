"""The GitHub Actions workflow: valid YAML, and its shell steps run locally against a fresh
store with the same commands and exit-code handling as in CI."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ALICE, CAROL, SMALL, make_cli, write_policy

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "release-candidate.yml"


def _workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())  # `on:` is read as the key True
    return doc


def test_workflow_is_valid() -> None:
    doc = _workflow()
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
    assert "magenta_release/**" in triggers["pull_request"]["paths"]
    assert doc["permissions"] == {"contents": "read"}
    steps = doc["jobs"]["propose"]["steps"]
    assert [s.get("id") for s in steps if "run" in s] == ["setup", "train", "compare", "propose"]
    for step in steps:
        assert ("uses" in step) != ("run" in step)
    commands = " ".join(s.get("run", "") for s in steps)
    assert ".venv/bin/magenta-release approve" not in commands  # approval stays human


def test_workflow_never_reaches_a_server_from_a_github_runner() -> None:
    """The runner's location is GitHub's choice: it gets no credential and no tracking URI, so
    it can only use a throwaway embedded store on generated data (docs/architecture.md)."""
    text = WORKFLOW.read_text()
    assert "secrets." not in text
    job = _workflow()["jobs"]["propose"]
    assert "environment" not in job
    env = {
        **job.get("env", {}),
        **{k: v for s in job["steps"] for k, v in s.get("env", {}).items()},
    }
    assert not {k for k in env if k.startswith("MLFLOW_TRACKING")}
    assert "--data" not in " ".join(s.get("run", "") for s in job["steps"])  # the generator


def _run_steps(home: Path, tmp: Path, rows: int) -> tuple[int, str]:
    """Run the `run:` steps after setup like the runner would; return (exit, summary)."""
    job = _workflow()["jobs"]["propose"]
    summary, outputs = tmp / "summary.md", tmp / "outputs"
    summary.write_text("")
    env = {**os.environ, **{k: str(v) for k, v in job["env"].items()}}
    env.update(
        {
            "MAGENTA_RELEASE_HOME": str(home),
            "RUNNER_TEMP": str(tmp),
            "GITHUB_STEP_SUMMARY": str(summary),
            "TRAIN_ROWS": str(rows),
            "PR_NUMBER": "7",
            "NO_COLOR": "1",
        }
    )
    step_outputs: dict[str, dict[str, str]] = {}

    def expand(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            expr = m.group(1).strip()
            if expr.startswith("steps."):
                _, step, _, key = expr.split(".")
                return step_outputs.get(step, {}).get(key, "")
            return ""  # secrets and github context are empty outside GitHub

        return re.sub(r"\$\{\{(.*?)\}\}", one, text)

    for key, value in env.items():
        env[key] = expand(value)
    for step in job["steps"]:
        if "run" not in step or step.get("id") == "setup":
            continue
        outputs.write_text("")
        step_env = {
            **env,
            "GITHUB_OUTPUT": str(outputs),
            **{k: expand(str(v)) for k, v in step.get("env", {}).items()},
        }
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step["run"]],
            cwd=ROOT,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        step_outputs[step["id"]] = dict(
            line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line
        )
        if done.returncode != 0:
            return done.returncode, summary.read_text()
    return 0, summary.read_text()


@pytest.mark.slow
def test_workflow_passes_on_a_store_without_champion(tmp_path: Path) -> None:
    code, summary = _run_steps(tmp_path / "mlruns", tmp_path, SMALL)
    assert code == 0, summary
    assert "| no_regression | pass | no champion yet" in summary
    assert "Gates passed" in summary
    assert "## Candidate vs champion" in summary


@pytest.mark.slow
def test_workflow_fails_when_the_champion_beats_the_candidate(tmp_path: Path) -> None:
    home = tmp_path / "mlruns"
    cli = make_cli(home)
    assert cli("init").exit_code == 0
    write_policy(home, approval={"approvers": [ALICE], "four_eyes": True})
    strong = cli.json("train", "--rows", "40000", "--seed", "1", "--param", "max_depth=3")
    version = cli.json("propose", strong["run_id"], by=CAROL)["version"]
    cli.json("approve", str(version), "--reason", "baseline", "--yes", by=ALICE)
    code, summary = _run_steps(home, tmp_path, 1500)
    assert code == 1, summary
    assert "| no_regression_roc_auc | **FAIL** |" in summary
    assert "Gates passed" not in summary
    assert cli.json("status")["champion"]["version"] == version
