"""Typed errors. The library raises these; the CLI maps `exit_code` to the process exit code.

Exit codes (README.md): 1 refused by the release policy, 2 bad input,
3 integrity or residency violation, 4 store unreachable.
"""

from __future__ import annotations


class ReleaseError(Exception):
    """Base of every expected error. The message is one line: what, why, what to do."""

    exit_code = 2


class PolicyRefused(ReleaseError):
    """The release policy says no: gates failed, four eyes, not an approver, stale proposal."""

    exit_code = 1


class Stale(PolicyRefused):
    """The champion or the policy moved since the caller evaluated its proposal: evaluate the
    gates again (propose does, up to three times)."""


class BadInput(ReleaseError):
    """Unknown run or version, bad arguments, schema mismatch, unreadable file."""

    exit_code = 2


class IntegrityViolation(ReleaseError):
    """Hash mismatch, pickle, tampered audit log, store outside the allowed locations."""

    exit_code = 3


class StoreUnreachable(ReleaseError):
    """The MLflow store cannot be reached or read."""

    exit_code = 4
