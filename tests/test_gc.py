"""`gc`: dry-run by default; frees artifacts of unproposed runs only; reports bytes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ALICE, CAROL, Trained


def _disk(home: Path, run_id: str) -> int:
    return sum(
        p.stat().st_size for p in (home / "artifacts").rglob(f"{run_id}/**/*") if p.is_file()
    )


def test_gc_frees_only_unproposed_runs(trained: Trained) -> None:
    t = trained
    t.cli.json("propose", t.runs["good"], by=CAROL)
    t.cli.json("approve", "1", "--reason", "go", "--yes", by=ALICE)
    audit_before = t.cli.json("history", "--limit", "100")
    sizes = {name: _disk(t.cli.home, run) for name, run in t.runs.items()}

    dry = t.cli.json("gc", "--older-than", "0")
    assert dry["applied"] is False and dry["bytes_freed"] == 0
    assert {r["run_id"] for r in dry["runs"]} == {t.runs["worse"], t.runs["other"]}
    assert dry["bytes"] == sizes["worse"] + sizes["other"] > 0
    assert {name: _disk(t.cli.home, run) for name, run in t.runs.items()} == sizes

    assert t.cli.json("gc", "--older-than", "30")["runs"] == []  # all runs are new

    done = t.cli.json("gc", "--older-than", "0", "--apply")
    assert done["bytes_freed"] == dry["bytes"]
    assert _disk(t.cli.home, t.runs["worse"]) == 0 and _disk(t.cli.home, t.runs["other"]) == 0
    assert _disk(t.cli.home, t.runs["good"]) == sizes["good"]
    assert t.cli.json("history", "--limit", "100") == audit_before
    assert t.cli.json("audit", "verify")["ok"] is True
    assert t.cli.json("gc", "--older-than", "0")["runs"] == []  # nothing left to free
    human = t.cli("gc")
    assert human.exit_code == 0 and "run again with --apply" in human.stdout
