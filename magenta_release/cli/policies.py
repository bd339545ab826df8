"""`policy set`, `policy show`, `policy history`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from magenta_release.cli.base import (
    ByOpt,
    CheckModelOpt,
    JsonOpt,
    ModelOpt,
    UriOpt,
    emit,
    open_context,
    open_store,
    output_plain,
    policy_app,
    run_action,
)


@policy_app.command("set")
def policy_set(
    file: Annotated[Path, typer.Argument(help="The new policy (TOML).", show_default=False)],
    reason: Annotated[str, typer.Option(help="Why the policy changes (recorded).")],
    by: ByOpt = None,
    model_name: CheckModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store FILE as the new version of its model's policy ([model] registered_name), with an
    audit event. Only the current policy's [approval] policy_owners may do it; on a tracking
    server, under four eyes, one owner's call proposes the change and a second owner's or an
    approver's call with the same file puts it in force. The first policy of a new model is
    stored by whoever may create a registered model. Versions proposed under the old policy
    must be proposed again before they can be approved."""
    from magenta_release.app.policies import set_policy

    result = run_action(
        as_json,
        lambda: set_policy(open_store(tracking_uri), file, reason=reason, by=by, model=model_name),
    )
    r = result.record

    def human() -> None:
        if result.pending:
            who = output_plain(result.pending["proposed_by"])
            typer.echo(
                f"{r.model}: policy change proposed by {who} (four eyes): policy v{r.version} "
                "stays in force until another owner or an approver confirms it with "
                "`magenta-release policy set` and the same file"
            )
            return
        if not result.changed:
            typer.echo(f"{r.model}: policy v{r.version} is already this file; nothing changed")
            return
        typer.echo(
            f"{r.model}: policy v{r.version} ({r.sha256[:12]}) in force, set by "
            f"{output_plain(r.actor)}"
        )

    emit(as_json, result.to_json(), human)


@policy_app.command("show")
def policy_show(
    model_name: ModelOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Print the policy in force, exactly as stored (pipe it to a file to edit it)."""
    from magenta_release.app.policies import show

    record, text = run_action(as_json, lambda: show(open_context(tracking_uri, model_name)))
    emit(as_json, {**record.to_json(), "toml": text}, lambda: typer.echo(text, nl=False))


@policy_app.command("history")
def policy_history(
    model_name: ModelOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Every version of the policy, newest first: who set it, when and why."""
    from magenta_release.app.policies import history

    found = run_action(as_json, lambda: history(open_context(tracking_uri, model_name)))

    def human() -> None:
        for r in found:
            typer.echo(
                f"v{r.version}  {r.time[:19]}  {r.sha256[:12]}  {output_plain(r.actor)}: "
                f"{output_plain(r.reason)}"
            )

    emit(as_json, {"versions": [r.to_json() for r in found]}, human)
