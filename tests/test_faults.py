"""Fault injection: SIGKILL `train`, `propose`, `approve` and `rollback` at named steps. Then
`status` (a read command) reports the damage without writing (exit 3 where the registry and the
log disagree), `repair --reason` restores, `audit verify` passes, and a rerun is idempotent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from magenta_release.core.faults import STEPS
from tests.conftest import ALICE, BOB, CAROL, Trained, snapshot

pytestmark = pytest.mark.slow


def _run(
    t: Trained, *args: str, by: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MAGENTA_RELEASE_FAULT"}
    env.update({k: v for k, v in t.cli.env.items() if v is not None})
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MAGENTA_RELEASE_USER"] = by
    if fault:
        env["MAGENTA_RELEASE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "magenta_release.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _killed(t: Trained, *args: str, by: str, fault: str) -> None:
    assert fault in STEPS
    done = _run(t, *args, by=by, fault=fault)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])


def _json(t: Trained, *args: str, by: str = ALICE, code: int = 0) -> dict[str, Any]:
    """Everything but the killed command runs in-process: subprocesses cost ~3 s of imports."""
    return t.cli.json(*args, by=by, code=code)


def _repair(t: Trained) -> dict[str, Any]:
    return _json(t, "repair", "--reason", "killed in a drill", by=ALICE)


def _alert(t: Trained) -> str:
    """`status` exits 3 naming the problem, and leaves the store byte-identical."""
    before = snapshot(t.cli.home)
    result = t.cli("status", by=ALICE)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert snapshot(t.cli.home) == before
    return result.stderr


def _consistent(t: Trained) -> dict[str, Any]:
    """After `repair`: the chain verifies, no run RUNNING, every version has a status, every
    alias points at an existing version."""
    status = _json(t, "status")
    assert _json(t, "audit", "verify")["ok"] is True
    runs = _json(t, "runs", "--last", "50")["runs"]
    assert "RUNNING" not in {r["status"] for r in runs}
    versions = {v["version"] for v in status["versions"]}
    assert all(v["status"] for v in status["versions"])
    for alias in ("champion", "challenger", "previous"):
        assert status[alias] is None or status[alias]["version"] in versions
    return status


@pytest.mark.parametrize(
    "step", ["train.after_create_run", "train.after_fit", "train.after_model_upload"]
)
def test_killed_training_is_marked_failed_and_reruns(trained: Trained, step: str) -> None:
    _killed(trained, "train", "--rows", "1000", "--seed", "3", by=CAROL, fault=step)
    before = snapshot(trained.cli.home)
    status = _json(trained, "status")  # a dead run is news, not an integrity alert
    assert len(status["dead_runs"]) == 1
    assert snapshot(trained.cli.home) == before
    repaired = _repair(trained)
    assert repaired["failed_runs"] == status["dead_runs"]
    _consistent(trained)
    again = _json(trained, "train", "--rows", "1000", "--seed", "3", by=CAROL)
    assert again["run_id"] not in repaired["failed_runs"]


@pytest.mark.parametrize("step", ["propose.after_create_version", "propose.after_audit"])
def test_killed_proposal_is_completed(trained: Trained, step: str) -> None:
    run = trained.runs["good"]
    _killed(trained, "propose", run, by=CAROL, fault=step)
    if step == "propose.after_create_version":  # the log lacks the proposal until repaired
        assert _json(trained, "audit", "verify", code=3)["ok"] is False
        assert "version 1 has no event in the log" in _alert(trained)
    assert _repair(trained)["fixes"]
    status = _consistent(trained)
    assert status["challenger"]["version"] == 1
    again = _json(trained, "propose", run, by=CAROL)
    assert (again["version"], again["status"], again["existing"]) == (1, "pending_approval", True)
    events = _json(trained, "history")["events"]
    assert [e["action"] for e in events].count("propose") == 1
    assert events[0]["action"] == "repair"


def test_killed_approval_is_completed_and_rerun_is_idempotent(trained: Trained) -> None:
    assert _json(trained, "propose", trained.runs["good"], by=CAROL)["version"] == 1
    _killed(
        trained, "approve", "1", "--reason", "go", "--yes", by=ALICE, fault="approve.after_audit"
    )
    assert _json(trained, "audit", "verify", code=3)["ok"] is False  # decision, no alias yet
    assert "@champion is None but the log says 1" in _alert(trained)
    assert _json(trained, "predict", "--input", "x.parquet", "--output", "o.parquet", code=3)
    _repair(trained)
    again = _json(trained, "approve", "1", "--reason", "go", "--yes", by=ALICE)
    assert again["champion"] == 1
    status = _consistent(trained)
    assert status["champion"]["version"] == 1
    assert [e["action"] for e in _json(trained, "history")["events"]].count("approve") == 1


def test_killed_between_aliases_and_rollback(released: Trained) -> None:
    _killed(
        released,
        "approve",
        "2",
        "--reason",
        "second",
        "--yes",
        by=BOB,
        fault="sync.after_champion_alias",
    )
    _alert(released)
    _repair(released)
    status = _consistent(released)
    assert (status["champion"]["version"], status["previous"]["version"]) == (2, 1)
    assert {v["version"]: v["status"] for v in status["versions"]} == {1: "retired", 2: "approved"}
    _killed(
        released, "rollback", "--reason", "drill", "--yes", by=ALICE, fault="rollback.after_audit"
    )
    _alert(released)
    _repair(released)
    status = _consistent(released)
    assert status["champion"]["version"] == 1 and status["previous"]["version"] == 2
    rerun = _json(released, "rollback", "--reason", "drill", "--yes", by=ALICE)
    assert rerun["champion"] == 1
    assert [e["action"] for e in _json(released, "history")["events"]].count("rollback") == 1
