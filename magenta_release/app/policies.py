"""`policy set`, `policy show`, `policy history`: a model's stored policy (how it is stored:
`app.services.policies`)."""

from __future__ import annotations

from pathlib import Path

from magenta_release.app.context import Context
from magenta_release.app.services.policies import PolicySet, is_owner
from magenta_release.app.services.policies import set_policy as store_policy
from magenta_release.io import policy_store
from magenta_release.io.store import Store

__all__ = ["PolicySet", "history", "is_owner", "set_policy", "show"]


def set_policy(
    store: Store, path: Path, *, reason: str, by: str | None = None, model: str | None = None
) -> PolicySet:
    """Store the policy file at `path` as the new version for the model it names."""
    return store_policy(store, path, reason=reason, by=by, model=model)


def show(ctx: Context) -> tuple[policy_store.PolicyVersion, str]:
    """The policy in force and its exact text (what `policy set` stored)."""
    record = ctx.policy_version
    return record, policy_store.read_text(ctx.store.client, record).decode("utf-8")


def history(ctx: Context) -> list[policy_store.PolicyVersion]:
    """Every stored version of the model's policy, newest first. The one in force is read
    too: an edited stored text is an integrity alert (exit 3) here as everywhere."""
    _ = ctx.policy
    return list(reversed(policy_store.versions(ctx.log)))
