"""The first hour of a new user: nothing surprising, nothing misleading (each item of the
first-hour issue driven through the real CLI on a real store)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from benchmarks.fixtures import clone_run
from tests.conftest import ALICE, CAROL, Trained, invoke, snapshot, write_policy


def test_demo_refuses_a_store_that_matters_and_a_tracking_server(
    released: Trained, tmp_path: Path
) -> None:
    before = snapshot(released.cli.home)
    result = released.cli("demo", "--home", str(released.cli.home))
    assert result.exit_code == 1
    assert "demo refuses" in result.stderr and "did not create" in result.stderr
    assert snapshot(released.cli.home) == before  # its champion untouched
    server = invoke(
        ["demo", "--home", str(tmp_path / "fresh")],
        {**released.cli.env, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    assert server.exit_code == 1 and "tracking URI is set" in server.stderr
    assert not (tmp_path / "fresh").exists()


def test_run_ids_as_people_copy_them(trained: Trained) -> None:
    good = trained.runs["good"]
    assert trained.cli.json("propose", good[:12], by=CAROL)["run_id"] == good
    short = trained.cli("compare", good[:6])
    assert short.exit_code == 2 and "at least 8 characters" in short.stderr
    twin = clone_run(trained.cli.home / "mlflow.db", good, good[:10] + uuid.uuid4().hex[10:])
    ambiguous = trained.cli("compare", good[:9])
    assert ambiguous.exit_code == 2 and "ambiguous" in ambiguous.stderr
    assert good[:16] in ambiguous.stderr and twin[:16] in ambiguous.stderr


def test_show_prints_live_status_gates_report_and_plots(trained: Trained) -> None:
    trained.cli.json("propose", trained.runs["good"], by=CAROL)
    trained.cli.json("approve", "1", "--reason", "first", "--yes", by=ALICE)
    doc = trained.cli.json("show", "1")
    assert doc["status"] == "approved"  # live, not the status at proposal
    assert "pending_approval" not in doc["report"].splitlines()[0]
    assert {g["name"] for g in doc["gates"]} >= {"metrics_reproducible", "sha256_manifest"}
    assert any(p.endswith("roc_curve.png") and Path(p).is_file() for p in doc["plots"])
    human = trained.cli("show", "1")
    assert human.exit_code == 0 and "approved" in human.stdout and "roc_curve.png" in human.stdout


def test_governance_you_can_see(trained: Trained) -> None:
    proposed = trained.cli("propose", trained.runs["good"], by=CAROL)
    assert "identity is not verified" in proposed.stderr  # embedded: a typed name
    assert "not verified" in trained.cli("status").stdout
    write_policy(trained.cli.home, approval={"approvers": ["alice", "bob", "dave"]})
    # proposed under the old policy: approving it now needs a fresh proposal
    refused = trained.cli("approve", "1", "--reason", "after the change", "--yes", by=ALICE)
    assert refused.exit_code == 1 and "re-propose" in refused.stderr
    trained.cli.json("reject", "1", "--reason", "policy changed", by=ALICE)
    again = trained.cli.json("propose", trained.runs["good"], by=CAROL)["version"]
    assert again == 2
    trained.cli.json("approve", "2", "--reason", "after the policy change", "--yes", by=ALICE)
    history = trained.cli("history")
    assert "policy changed" in history.stdout  # its own line, not only in --json
    versions = trained.cli.json("policy", "history")["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert trained.cli.json("audit", "verify")["ok"] is True


@pytest.mark.parametrize("hostile", ["[/x]", "[link=https://evil.example]click[/link]", "\x1b[2J"])
def test_user_text_is_printed_literally_or_refused(trained: Trained, hostile: str) -> None:
    result = trained.cli("propose", trained.runs["good"], "--note", f"x {hostile}", by=CAROL)
    if "\x1b" in hostile:
        assert result.exit_code == 2 and "control characters" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    history = trained.cli("history")
    assert history.exit_code == 0 and "Traceback" not in history.stderr
    assert hostile.replace("\n", " ") in history.stdout.replace("\n", "")


def test_gain_is_called_gain(trained: Trained) -> None:
    write_policy(trained.cli.home, approval={"approvers": ["alice", "bob"]})
    trained.cli.json("propose", trained.runs["other"], by=CAROL)
    trained.cli.json("approve", "1", "--reason", "x", "--yes", by=ALICE)
    better = trained.cli.json("propose", trained.runs["good"], by=CAROL)
    detail = next(g for g in better["gates"] if g["name"] == "no_regression_roc_auc")["detail"]
    assert "(gain " in detail and "drop +" not in detail


def test_train_suggests_the_next_command(trained: Trained) -> None:
    result = trained.cli("train", "--rows", "1000", "--seed", "3", by=CAROL)
    assert result.exit_code == 0
    assert "next: magenta-release compare" in result.stdout
    assert "magenta-release propose" in result.stdout
