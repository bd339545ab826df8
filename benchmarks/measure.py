"""Run a job in its own process and measure it: wall time, peak RSS, and its JSON answer.

The peak RSS is the job's own `ru_maxrss`, read with `os.wait4` on its pid (the number
`/usr/bin/time -v` prints as "Maximum resident set size"). A small launcher process starts the
job: Linux carries the parent's high-water mark into a forked child across `exec`, so a job
started straight from the benchmark process (hundreds of MB) would report at least that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# argv: REPORT_FILE CMD...; runs CMD, writes {"code", "maxrss_kib"} to REPORT_FILE.
LAUNCHER = """\
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}, fh)
"""


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds, launch to exit (interpreter, imports, the job)
    peak_mb: float  # the job's maximum resident set size, MiB
    answer: dict[str, Any] = field(default_factory=dict)  # the job's last JSON line, if any


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run `cmd` through the launcher; a failing command raises with its stderr (a benchmark
    must not report a crash as a number)."""
    with tempfile.TemporaryDirectory(prefix="magenta-measure-") as tmp:
        report = Path(tmp) / "rusage.json"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(report), *cmd],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - start
        usage = json.loads(report.read_text()) if report.exists() else {"code": done.returncode}
    if done.returncode != 0 or usage["code"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {usage['code']}: {done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    answer = json.loads(lines[-1]) if lines else {}
    return Measured(wall, usage["maxrss_kib"] / 1024, answer)  # Linux reports KiB


def worker(*args: str) -> Measured:
    """`python -m benchmarks.worker ARGS...` in its own process."""
    return run_measured([sys.executable, "-m", "benchmarks.worker", *args])
