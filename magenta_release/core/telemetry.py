"""Telemetry switches, importable without pydantic so the CLI can set them first thing."""

from __future__ import annotations

import os

# Both MLflow and Dagster phone home by default; nothing may leave Europe.
# MLflow only honours the string "true" for DO_NOT_TRACK
# (https://mlflow.org/docs/latest/community/usage-tracking/).
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "DAGSTER_DISABLE_TELEMETRY": "true",
}
# Quiet MLflow's tqdm bars: our own progress goes to stderr, and JSON mode must stay clean.
# MLflow also prints "View run ... at: URL" to stdout for server URIs, which would break the
# one-JSON-document contract of --json.
QUIET = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def disable_telemetry() -> None:
    """Switch off MLflow and Dagster telemetry for this process and its children."""
    os.environ.update(TELEMETRY_OFF)
    os.environ.update(QUIET)
