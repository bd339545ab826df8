"""The GitHub Actions workflows are locked down: zizmor (offline) finds nothing, every action is
pinned to a full commit SHA with its version in a comment, checkout keeps no credentials, and
the token gets least permissions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ZIZMOR = Path(sys.executable).parent / "zizmor"
# `uses: owner/repo[/path]@<40 hex> # v1.2.3`; local actions (./...) and docker:// have no ref
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+)*\s*$")


def _steps_and_jobs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every mapping that may carry `uses:`: jobs (reusable workflows) and their steps."""
    found: list[dict[str, Any]] = []
    for job in doc["jobs"].values():
        found.append(job)
        found.extend(job.get("steps", []))
    return found


def test_there_are_workflows() -> None:
    assert {w.name for w in WORKFLOWS} >= {"ci.yml", "release-candidate.yml"}


@pytest.mark.parametrize("persona", ["regular", "auditor"])
def test_zizmor_finds_nothing(persona: str) -> None:
    done = subprocess.run(
        [str(ZIZMOR), "--offline", "--persona", persona, "--format", "json", "--no-progress"]
        + [str(w) for w in WORKFLOWS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    findings = json.loads(done.stdout)
    assert findings == [], json.dumps(findings, indent=1)[:3000]
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_action_is_pinned_to_a_commit_sha(workflow: Path) -> None:
    uses = [
        ln.split("uses:", 1)[1].strip()
        for ln in workflow.read_text().splitlines()
        if re.match(r"^\s*(-\s+)?uses:", ln)
    ]
    parsed = [
        s["uses"] for s in _steps_and_jobs(yaml.safe_load(workflow.read_text())) if "uses" in s
    ]
    assert uses and len(uses) == len(parsed)
    for ref in uses:
        assert PINNED.match(ref), f"{workflow.name}: `uses: {ref}` is not `owner/repo@<sha> # vX`"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_checkout_keeps_no_credentials_and_permissions_are_least(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    assert doc.get("permissions") in ({}, {"contents": "read"}), doc.get("permissions")
    for job in doc["jobs"].values():
        assert job.get("permissions", {}) in ({}, {"contents": "read"})
    checkouts = [
        s for s in _steps_and_jobs(doc) if str(s.get("uses", "")).startswith("actions/checkout@")
    ]
    assert checkouts
    for step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False


def test_ci_runs_the_makefile_targets() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"push", "pull_request"}
    runs = [s["run"] for job in doc["jobs"].values() for s in job["steps"] if "run" in s]
    # CI runs everything `make test` runs plus the slow end-to-end tests (README, "Tests")
    assert "make lint" in runs and "make test-all" in runs


def test_the_pre_commit_hook_is_make_lint() -> None:
    """Hooks, CI and people share one task list: the hook calls `make lint`, nothing pinned
    separately that could drift from the lock."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    assert [h["entry"] for h in hooks] == ["make lint"]
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^\t\$\(BIN\)/zizmor --offline .*\.github/workflows$", lint, flags=re.M)
