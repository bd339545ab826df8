"""Each benchmark runs (tiny sizes, one repetition) and the report has every row; the scale
store the benchmarks build is a consistent one. No timing is asserted here, and no test waits
on a clock: timings belong to `make bench`. The whole smoke run is `slow` (`make test-all` and
CI run it; `make test` does not)."""

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
        "streaming predict 100,000 rows: throughput",
        "streaming predict 10,000 rows: peak RSS",
        "streaming predict 50,000 rows: peak RSS",
        "streaming predict 100,000 rows: peak RSS",
        "health on 10,000 labelled rows",
        "train's data phase, 20,000-row parquet: time",
        "train's data phase, 20,000-row parquet: peak RSS",
        "train from a 20,000-row parquet",
        "propose with 4,000 evaluation rows: time",
        "propose with 4,000 evaluation rows: peak RSS",
        "read command: magenta-release status",
        "read command: magenta-release history",
        "read command: magenta-release runs",
        "status at 300 events, 20 versions, 1,000 runs",
        "history at 300 events",
        "audit verify at 300 events",
        "runs at 300 events",
        "show at 300 events",
        "propose at 300 events",
        "approve at 300 events",
        "run-id prefix of the oldest of 1,000 runs",
        ".venv size after the switch to xgboost-cpu",
        "MLflow server image: Python dependencies",
    ):
        assert f"| {row}" in text, row
    assert text.count("\n| ") >= 30


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


@pytest.mark.slow
def test_the_scale_store_is_consistent(tmp_path: Path) -> None:
    """The copied versions and events verify, the registry agrees with the log, and the oldest
    run is found by its prefix among the bulk runs: the scale rows measure a valid store."""
    from benchmarks.scale import scale_store
    from magenta_release.app.context import Context
    from magenta_release.app.services import lifecycle
    from magenta_release.core.settings import Settings

    scale = scale_store(tmp_path / "store", events=60, versions=6, runs=300)
    ctx = Context.open(Settings(home=scale.home))
    assert ctx.log.problems() == []
    assert len(ctx.log.events) == 60
    assert len(ctx.registry.versions()) == 6
    assert lifecycle.drift(ctx) == []
    assert ctx.runs.get_run(scale.oldest_run[:10]).run_id == scale.oldest_run
    assert len(ctx.runs.all_runs()) >= 302
    assert scale.oldest_run == ctx.runs.all_runs()[-1].run_id  # the newest first
