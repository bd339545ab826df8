"""`card`: the model card of a version, as an approver reads it before deciding (built by
`app.services.cards` from the evidence recorded at proposal and the version's live tags)."""

from __future__ import annotations

from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services.cards import card_of
from magenta_release.core.card import markdown

__all__ = ["build", "markdown"]


def build(ctx: Context, version: int | str, *, as_proposed: bool = False) -> dict[str, Any]:
    """The card of one version as a JSON-ready dict. Reads only. `as_proposed`: the copy
    attached at propose (its status is the proposal's; approver fields are still empty)."""
    return card_of(ctx, ctx.registry.version(version), as_proposed=as_proposed)
