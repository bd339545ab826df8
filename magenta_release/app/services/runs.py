"""Training runs that died: RUNNING in the store, but their process is gone (same host) or
they are a day old. `status` lists them; `repair` marks them FAILED."""

from __future__ import annotations

import time

from magenta_release.core import keys
from magenta_release.io.lock import process_gone
from magenta_release.io.store import Runs

STALE_RUN_HOURS = 24


def dead_runs(runs: Runs) -> list[str]:
    """RUNNING runs whose training process is gone (same host) or that are a day old."""
    now = time.time() * 1000
    dead = []
    for run in runs.all_runs("attributes.status = 'RUNNING'"):
        gone = process_gone(run.tags.get(keys.RUN_HOST), run.tags.get(keys.RUN_PID))
        if gone or now - run.start_time > STALE_RUN_HOURS * 3600 * 1000:
            dead.append(run.run_id)
    return dead
