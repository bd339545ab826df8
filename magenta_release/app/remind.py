"""`remind`: nudge the approvers of proposals that wait too long (`[approval]
remind_after_days`); expired ones say they can only be rejected. The Dagster code location runs
it daily."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import notify
from magenta_release.core import decisions
from magenta_release.core.policy import NotifyEvent
from magenta_release.core.states import Status


@dataclass(frozen=True)
class Reminder:
    version: int
    age_days: float | None
    expired: bool
    delivered: bool | None  # None: no webhook subscribes to reminders

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "age_days": None if self.age_days is None else round(self.age_days, 1),
            "expired": self.expired,
            "delivered": self.delivered,
        }


class Reminders(list[Reminder]):
    """The reminders sent, and whether the policy names any webhook at all."""

    webhooks: bool = False


def remind(ctx: Context) -> Reminders:
    """Send one reminder per version waiting for approval longer than `remind_after_days`
    (policy [approval]); expired ones say so."""
    actor = ctx.actor
    ctx.check_residency()  # it records each delivery as a version tag
    approval = ctx.policy.approval
    now = datetime.now(UTC)
    sent = Reminders()
    sent.webhooks = bool(ctx.policy.notify.webhooks)
    for v in sorted(ctx.registry.versions(), key=lambda v: v.version):
        age = decisions.proposal_age_days(v, now)
        if v.status != Status.PENDING or (age is not None and age < approval.remind_after_days):
            continue
        expired = decisions.expired(approval, age)
        facts = (
            "waiting " + ("for an unknown time" if age is None else f"{age:.1f} days"),
            "EXPIRED: it can no longer be approved; reject it and propose a new run"
            if expired
            else f"expires after {approval.expires_after_days:g} days",
        )
        # An expired version can only be rejected: say so rather than suggest a doomed approve.
        commands = (
            (f"magenta-release reject {v.version} --model {ctx.model} --reason expired",)
            if expired
            else None
        )
        outcome = notify.announce(
            ctx, NotifyEvent.REMINDER, v.version, actor, facts=facts, commands=commands
        )
        sent.append(Reminder(v.version, age, expired, None if outcome is None else outcome.ok))
    return sent
