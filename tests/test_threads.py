"""OpenMP's waiting threads sleep in every process that imports the package (the 100k-row
train regression: spinning libgomp threads on a loaded 2-core machine), and a policy the
person set is kept."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import magenta_release, os, sklearn, xgboost; "  # the package first, as its commands do
    "print(os.environ.get('OMP_WAIT_POLICY'))"
)


def _policy(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_openmp_threads_wait_passively_unless_told_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"
    assert _policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"  # a person's choice wins
