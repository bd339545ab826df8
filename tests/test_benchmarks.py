"""Each benchmark runs (tiny sizes, one repetition) and the report has every row. No timing
is asserted here: timings belong to `make bench`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_every_benchmark_runs_and_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for row in (
        "CLI start-up",
        "init (fresh store)",
        "train end to end",
        "tracking overhead share",
        "data generation",
        "compare top 10",
        "predict 2,000 rows",
        "propose latency",
        "approve latency",
        "propose latency with the value gate",
        "streaming predict 50,000 rows: throughput",
        "streaming predict 50,000 rows: peak RSS",
        "streaming predict 10,000 rows: peak RSS",
        "train from a 20,000-row parquet: wall",
        "train from a 20,000-row parquet: peak RSS",
        "read command: magenta-release status",
        "read command: magenta-release history",
        "read command: magenta-release runs",
        ".venv size after the switch to xgboost-cpu",
        "MLflow server image: Python dependencies",
    ):
        assert f"| {row}" in text, row
    assert text.count("\n| ") >= 20


FILL = "b = bytearray({mb} * 2**20); b[::4096] = b'x' * len(b[::4096]); print('{{}}')"


def test_peak_rss_is_the_jobs_own_not_the_parents() -> None:
    """A child started from a big process inherits its high-water mark across exec on Linux;
    the launcher keeps each job's peak its own, so a small job reports a small peak."""
    from benchmarks.measure import run_measured

    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched: this process is > 400 MB resident
    small = run_measured([sys.executable, "-c", FILL.format(mb=1)])
    big = run_measured([sys.executable, "-c", FILL.format(mb=200)])
    del ballast
    assert small.answer == {}
    assert small.peak_mb < 100 < 200 < big.peak_mb < 400


def test_parquet_fixture_tiles_with_fresh_identifiers(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from benchmarks.fixtures import write_churn_parquet

    table = pq.read_table(write_churn_parquet(tmp_path / "t.parquet", 2500, chunk=1000))
    assert table.num_rows == 2500
    assert len(set(table.column("rating_account_id").to_pylist())) == 2500
    tiles = [c.split("-")[0] for c in table.column("customer_id").to_pylist()]
    assert tiles == ["0"] * 1000 + ["1"] * 1000 + ["2"] * 500
    features = table.drop_columns(["rating_account_id", "customer_id"])
    assert features.slice(0, 500).equals(features.slice(2000, 500))  # tiles repeat the rows
