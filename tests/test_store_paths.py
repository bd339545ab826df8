"""A store folder may be named with characters that mean something in a URI."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_cli


def test_a_store_under_a_folder_with_percent_hash_and_question_mark_works(tmp_path: Path) -> None:
    parent = tmp_path / "team 50% #1?"
    parent.mkdir()
    cli = make_cli(parent / "mlruns")
    assert cli("init").exit_code == 0
    run = cli.json("train", "--rows", "1000", "--seed", "3")["run_id"]
    assert [r["run_id"] for r in cli.json("runs")["runs"]] == [run]
    assert cli.json("status")["versions"] == []
    assert sorted(p.name for p in parent.iterdir()) == ["mlruns"]  # no stray file beside it
