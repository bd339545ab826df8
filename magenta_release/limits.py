"""Bounds on what people type, in one place: the CLI shows them in `--help` (Typer min/max) and
the library enforces the same ones for callers that skip the CLI (Dagster, scripts)."""

from __future__ import annotations

MAX_ROWS = 900_000  # rating_account_id is drawn without replacement from 900,000 integers
MIN_ROWS = 200  # fewer accounts leave too few churners for a stratified split
MAX_RUNS = 1000  # runs one `compare` or `runs` call reads
