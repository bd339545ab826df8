"""Named steps where the fault-injection tests kill the process (SIGKILL) to prove that an
interrupted command leaves a repairable store. Inert unless MAGENTA_RELEASE_FAULT names the
step, which only the test harness sets."""

from __future__ import annotations

import os
import signal

STEPS = (
    "train.after_create_run",
    "train.after_fit",
    "train.after_model_upload",
    "propose.after_create_version",
    "propose.after_audit",
    "approve.after_audit",
    "sync.after_champion_alias",
    "rollback.after_audit",
)


def point(name: str) -> None:
    """Die here, like `kill -9`, when the harness asks for this step."""
    if os.environ.get("MAGENTA_RELEASE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
