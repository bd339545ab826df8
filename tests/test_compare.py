"""`runs` and `compare`, including the fast top-k path on a store with many runs."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL, Cli


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


def _fill(store: Any, n: int, seed: int) -> dict[str, float]:
    """n finished runs with random metrics, logged straight through the MLflow client."""
    from mlflow.entities import Metric

    rng = random.Random(seed)
    exp = store.experiment_id(create=True)
    values: dict[str, float] = {}
    for i in range(n):
        run = store.client.create_run(exp, run_name=f"r{i}")
        value = round(rng.uniform(0.6, 0.9), 6)
        store.client.log_batch(
            run.info.run_id,
            metrics=[Metric("roc_auc", value, 0, 0), Metric("brier", 1 - value, 0, 0)],
        )
        store.client.set_terminated(run.info.run_id)
        values[run.info.run_id] = value
    return values


def test_top_runs_equals_a_full_sort(store: Any) -> None:
    values = _fill(store, 700, seed=4)
    expected = sorted(values, key=lambda r: -values[r])[:10]
    t = time.perf_counter()
    got = store.top_runs("roc_auc", 10, lower_is_better=False)
    assert time.perf_counter() - t < 30  # a sanity bound, not a benchmark (see make bench)
    assert [r.run_id for r in got] == expected
    lowest = sorted(values, key=lambda r: 1 - values[r])[:5]
    assert [r.run_id for r in store.top_runs("brier", 5, lower_is_better=True)] == sorted(
        values, key=lambda r: values[r], reverse=True
    )[:5]
    assert lowest  # brier = 1 - roc_auc, so the best brier runs are the best roc_auc runs


def test_top_runs_with_fewer_runs_than_asked_returns_them_all_sorted(store: Any) -> None:
    values = _fill(store, 3, seed=9)
    got = store.top_runs("roc_auc", 5, lower_is_better=False)
    assert [r.run_id for r in got] == sorted(values, key=lambda r: -values[r])
    low = store.top_runs("brier", 5, lower_is_better=True)
    assert [r.run_id for r in low] == sorted(values, key=lambda r: -values[r])
