"""Bounds on what people type, in one place: the CLI shows them in `--help` (Typer min/max) and
the library enforces the same ones for callers that skip the CLI (Dagster, scripts)."""

from __future__ import annotations

MAX_ROWS = 900_000  # rating_account_id is drawn without replacement from 900,000 integers
MIN_ROWS = 200  # fewer accounts leave too few churners for a stratified split
MAX_RUNS = 1000  # runs one `compare` or `runs` call reads
# One documented limit per field (docs/reliability.md): every audit event must fit the store's
# tag limit (5,000 characters on PostgreSQL), checked before anything is written.
MAX_REASON, MAX_NOTE = 1000, 1000
# A proposal's evidence as the release authority accepts it from the proposer's machine: each
# gate's detail (the longest the gates write is a few hundred characters), the number of gates
# and the whole canonical text (a registry tag holds at most 100,000 characters in MLflow).
MAX_GATE_DETAIL, MAX_GATES, MAX_EVIDENCE = 2000, 200, 90_000


def check_text(value: str, flag: str, limit: int) -> str:
    """Free text people type: at most `limit` characters, no control characters (newlines
    and tabs allowed); BadInput otherwise, before any write."""
    from magenta_release.core.errors import BadInput

    if len(value) > limit:
        raise BadInput(f"{flag} is {len(value):,} characters; keep it under {limit:,}")
    if any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in value):
        raise BadInput(f"{flag} contains control characters (escape sequences?); type plain text")
    return value


def require_reason(reason: str, why: str) -> None:
    """A decision says why: a non-empty `--reason` within its bound."""
    from magenta_release.core.errors import BadInput

    check_text(reason, "--reason", MAX_REASON)
    if not reason.strip():
        raise BadInput(f"--reason is empty; say why {why}")
