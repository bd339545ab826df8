"""The release statuses of a model version (DESIGN.md §6): one definition, imported everywhere."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """The `release.status` tag of a registered model version."""

    PENDING = "pending_approval"  # passed every gate; waits for an approver (@challenger)
    FAILED = "gates_failed"  # a gate failed; cannot be approved
    APPROVED = "approved"  # the current @champion
    REJECTED = "rejected"  # turned down by an approver or withdrawn by its proposer
    RETIRED = "retired"  # was champion, replaced by an approval
    ROLLED_BACK = "rolled_back"  # was champion, replaced by a rollback


# Versions that passed their gates and were approved once: the only ones that may be served.
SERVABLE = frozenset({Status.APPROVED, Status.RETIRED, Status.ROLLED_BACK})
