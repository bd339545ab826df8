"""`runs` and `compare`, including the fast top-k path on a store with many runs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL, Cli, Trained


def test_compare_lists_both_runs_with_metrics_params_and_plot(cli: Cli, tmp_path: Path) -> None:
    a = cli.json("train", "--rows", str(SMALL), "--seed", "7", "--param", "max_depth=3")
    b = cli.json("train", "--rows", str(SMALL), "--seed", "7", "--param", "max_depth=5")
    plot = tmp_path / "curves.png"
    doc = cli.json("compare", a["run_id"], b["run_id"], "--plot", str(plot))
    assert [r["run_id"] for r in doc["runs"]] == [a["run_id"], b["run_id"]]
    assert doc["runs"][0]["params"]["max_depth"] == "3"
    assert doc["runs"][1]["metrics"]["roc_auc"] == pytest.approx(b["metrics"]["roc_auc"])
    assert doc["differing_params"] == ["max_depth"]
    assert doc["comparable"] is True
    assert doc["champion"] is None
    best = max((a, b), key=lambda r: r["metrics"]["roc_auc"])
    assert doc["best"]["roc_auc"] == best["run_id"]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    table = cli("compare", "--last", "2")
    assert table.exit_code == 0
    assert "max_depth" in table.stdout
    assert "roc_auc" in table.stdout
    listed = cli.json("runs", "--last", "1")
    assert [r["run_id"] for r in listed["runs"]] == [b["run_id"]]


def test_compare_flags_runs_on_different_data(cli: Cli) -> None:
    cli.json("train", "--rows", str(SMALL), "--seed", "1")
    cli.json("train", "--rows", str(SMALL), "--seed", "2")
    doc = cli.json("compare", "--last", "2")
    assert doc["comparable"] is False
    assert "not directly comparable" in cli("compare", "--last", "2").stdout


def test_compare_unknown_run_is_bad_input(cli: Cli) -> None:
    result = cli("compare", "0123456789abcdef0123456789abcdef")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: run 0123456789abcdef")
    assert "Traceback" not in result.stderr


def _fill(store: Any, n: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """n finished runs with random metrics, inserted in the store's own tables as MLflow
    writes them (its client took a minute for 700 runs). Returns (roc_auc by run, brier by
    run): distinct values (so one order is right), brier drawn independently of roc_auc (so
    the two orders differ)."""
    import sqlite3
    import uuid

    rng = random.Random(seed)
    exp = int(store.runs.experiment_id(create=True))
    roc: dict[str, float] = {}
    brier: dict[str, float] = {}
    roc_draws = rng.sample(range(300_000), n)
    brier_draws = rng.sample(range(190_000), n)
    runs, latest, metrics = [], [], []
    for i in range(n):
        run = uuid.UUID(int=rng.getrandbits(128)).hex
        start = 1_700_000_000_000 + i
        runs.append((run, f"r{i}", start, start + 1, f"file:///dev/null/{run}", exp))
        roc_value, brier_value = 0.6 + roc_draws[i] / 1e6, 0.01 + brier_draws[i] / 1e6
        for key, value in (("roc_auc", roc_value), ("brier", brier_value)):
            latest.append((key, value, 0, 0, 0, run))
            metrics.append((key, value, 0, run, 0, 0))
        roc[run], brier[run] = roc_value, brier_value
    con = sqlite3.connect(store.settings.db_path)
    with con:
        con.executemany(
            "insert into runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) values (?, ?, 'LOCAL', '', '', 'test', 'FINISHED', "
            "?, ?, '', 'active', ?, ?)",
            runs,
        )
        con.executemany("insert into latest_metrics values (?,?,?,?,?,?)", latest)
        con.executemany(
            'insert into metrics ("key", value, timestamp, run_uuid, step, is_nan) '
            "values (?,?,?,?,?,?)",
            metrics,
        )
    con.close()
    return roc, brier


def test_top_runs_equals_a_full_sort(store: Any) -> None:
    roc, brier = _fill(store, 700, seed=4)
    highest = sorted(roc, key=lambda r: -roc[r])[:10]
    got = store.runs.top_runs("roc_auc", 10, lower_is_better=False)
    assert [r.run_id for r in got] == highest
    assert [r.metrics["roc_auc"] for r in got] == sorted(roc.values(), reverse=True)[:10]
    lowest = sorted(brier, key=lambda r: brier[r])[:5]
    low = store.runs.top_runs("brier", 5, lower_is_better=True)
    assert [r.run_id for r in low] == lowest
    assert [r.metrics["brier"] for r in low] == sorted(brier.values())[:5]
    assert lowest != highest[:5]  # the two metrics order the runs differently


def test_top_runs_with_fewer_runs_than_asked_returns_them_all_sorted(store: Any) -> None:
    roc, brier = _fill(store, 3, seed=9)
    got = store.runs.top_runs("roc_auc", 5, lower_is_better=False)
    assert [r.run_id for r in got] == sorted(roc, key=lambda r: -roc[r])
    low = store.runs.top_runs("brier", 5, lower_is_better=True)
    assert [r.run_id for r in low] == sorted(brier, key=lambda r: brier[r])


def test_delta_vs_a_champion_trained_on_other_rows_rescores_it_on_the_runs_rows(
    trained: Trained,
) -> None:
    """The champion trained on other data: the delta is computed against the champion
    re-scored on the run's own rows (as the gates do), and the JSON says so."""
    good = trained.runs["good"]
    trained.cli.json("propose", good, by="carol")
    trained.cli.json("approve", "1", "--reason", "baseline", "--yes", by="alice")
    other_data = trained.cli.json("train", "--rows", "4000", "--seed", "9", by="carol")["run_id"]
    doc = trained.cli.json("compare", other_data, good)
    assert doc["comparable"] is False  # the runs were evaluated on different rows
    run = next(r for r in doc["runs"] if r["run_id"] == other_data)
    assert run["delta_on_same_rows"] is True
    rescored = run["champion_rescored"]
    assert rescored is not None
    assert rescored["roc_auc"] != doc["champion"]["metrics"]["roc_auc"]  # other rows, other value
    expected = run["metrics"]["roc_auc"] - rescored["roc_auc"]
    assert abs(run["delta_vs_champion"]["roc_auc"] - expected) < 1e-12
