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
    ):
        assert f"| {row}" in text, row
    assert text.count("\n| ") >= 10


def test_loop_baseline_draws_the_same_distributions() -> None:
    from benchmarks.loop_generator import generate_rows

    accounts, usage, interactions = generate_rows(3, 3000)
    assert len(usage) == 4 * len(accounts) == 12000
    assert all(abs(a["remaining_binding_days"]) < a["contract_lifetime_days"] for a in accounts)
    assert 0.35 < sum(a["smartphone_brand"] == "iPhone" for a in accounts) / 3000 < 0.45
    assert {i["topic"] for i in interactions} <= {
        "produkte&services-tarifdetails",
        "produkte&services-tarifwechsel",
        "rechnungsanfragen",
        "vvl",
    }
