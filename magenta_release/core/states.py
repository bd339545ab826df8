"""The release vocabulary (docs/release-process.md), each defined once and imported everywhere: the
statuses of a model version, the actions of the audit log, and which of them move the
champion."""

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


class Action(StrEnum):
    """The `action` of an audit event: what a person (or `repair`) decided."""

    PROPOSE = "propose"
    APPROVE = "approve"
    REJECT = "reject"
    ROLLBACK = "rollback"
    REPAIR = "repair"
    POLICY_SET = "policy_set"
    # Under four eyes a policy change is proposed by one owner (this event names the stored
    # text) and stored by a second person's `policy_set` of the same text (server mode).
    POLICY_PROPOSE = "policy_propose"


# Versions that passed their gates and were approved once: the only ones that may be served.
SERVABLE = frozenset({Status.APPROVED, Status.RETIRED, Status.ROLLED_BACK})
# The events that move @champion.
CHAMPION_MOVES = frozenset({Action.APPROVE, Action.ROLLBACK})
