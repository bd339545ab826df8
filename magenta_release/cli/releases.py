"""Commands of the release process: propose, approve, reject, rollback, status, remind, show,
card, repair, history, audit verify."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from magenta_release.cli.base import (
    AllModelsOpt,
    ByOpt,
    JsonOpt,
    ModelOpt,
    ReasonOpt,
    UriOpt,
    VersionArg,
    YesOpt,
    app,
    audit_app,
    confirm_with,
    each_context,
    emit,
    open_context,
    output_plain,
    run_action,
    say_transition,
    show_summary,
    transition_doc,
    warn_unverified,
)

if TYPE_CHECKING:
    from magenta_release.app.decide import Transition
    from magenta_release.app.propose import Proposal
    from magenta_release.app.repair import RepairReport


@app.command()
def propose(
    run_id: Annotated[str, typer.Argument(help="The training run to release.", show_default=False)],
    by: ByOpt = None,
    note: Annotated[str, typer.Option(help="Why this candidate (shown to the approver).")] = "",
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a run's model and run the release gates: pass -> pending_approval and
    @challenger; fail -> gates_failed (exit 1). Proposing a run twice returns its version."""
    from magenta_release.app.propose import propose as do_propose
    from magenta_release.cli.render import gates_table, progress
    from magenta_release.core.states import Status

    def action() -> Proposal:
        ctx = open_context(tracking_uri, model_name, by)
        warn_unverified(ctx)
        with progress() as say:
            say("evaluating the release gates")
            return do_propose(ctx, run_id, note=note)

    result = run_action(as_json, action)

    def human() -> None:
        gates_table(
            f"Release gates for version {result.version}", [g.to_json() for g in result.gates]
        )
        typer.echo(
            f"version {result.version} is {output_plain(result.status)}"
            + (
                (
                    " (proposed before, and judged the same again: fix what failed, the "
                    "policy or the data, then propose again)"
                    if result.status == Status.FAILED
                    else " (proposed before)"
                )
                if result.existing
                else ""
            )
            + (
                f"; approve with: magenta-release approve {result.version} --reason ..."
                if result.status == Status.PENDING
                else ""
            )
        )

    emit(as_json, result.to_json(), human)
    if result.status == Status.FAILED:
        raise typer.Exit(1)


@app.command()
def approve(
    version: VersionArg,
    reason: ReasonOpt,
    by: ByOpt = None,
    yes: YesOpt = False,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a pending_approval version the champion. The approver must be in the policy's
    approvers and not its proposer; artifacts must still match their SHA-256."""
    from magenta_release.app.decide import approve as do_approve

    def action() -> Transition:
        ctx = open_context(tracking_uri, model_name, by)
        warn_unverified(ctx)
        return do_approve(
            ctx, version, reason=reason, confirm=confirm_with(yes, as_json, show_summary)
        )

    result = run_action(as_json, action)
    emit(as_json, transition_doc(result), lambda: say_transition(result))


@app.command()
def reject(
    version: VersionArg,
    reason: ReasonOpt,
    by: ByOpt = None,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn down a pending_approval version (an approver, or its proposer withdrawing it)."""
    from magenta_release.app.decide import reject as do_reject

    result = run_action(
        as_json,
        lambda: do_reject(open_context(tracking_uri, model_name, by), version, reason=reason),
    )
    emit(as_json, transition_doc(result), lambda: say_transition(result))


@app.command()
def rollback(
    reason: ReasonOpt,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="A version that was approved once (approved, retired or rolled_back), "
            "backwards or forwards (default: @previous).",
        ),
    ] = None,
    by: ByOpt = None,
    yes: YesOpt = False,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move @champion back to @previous (or --to VERSION); the current champion becomes
    rolled_back."""
    from magenta_release.app.decide import rollback as do_rollback

    def render(s: dict[str, Any]) -> None:
        typer.echo(
            output_plain(f"roll back {s['model']}: champion v{s['champion']} to v{s['target']}"),
            err=True,
        )

    result = run_action(
        as_json,
        lambda: do_rollback(
            open_context(tracking_uri, model_name, by),
            reason=reason,
            to=to,
            confirm=confirm_with(yes, as_json, render),
        ),
    )
    emit(as_json, transition_doc(result), lambda: say_transition(result))


@app.command()
def status(
    model_name: AllModelsOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Show @champion, @challenger, @previous and the versions waiting for approval (with their
    age).

    Reads only. If an alias or a status disagrees with the audit log (moved outside
    magenta-release, or an interrupted command), it exits 3 naming what moved; restore with
    `magenta-release repair --reason ...`.
    """
    from magenta_release.app.status import status_each
    from magenta_release.cli.render import status_table

    found = run_action(as_json, lambda: status_each(each_context(tracking_uri, model_name)))

    def human() -> None:
        for doc in found.models:
            status_table(doc)

    emit(as_json, found.to_json(), human)


@app.command()
def remind(
    by: ByOpt = None,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one reminder per version waiting for approval longer than `remind_after_days`
    ([approval] in the policy) to the webhooks under [notify]; expired versions are named as
    such. Dagster runs this daily; each delivery is recorded on its version (see: status)."""
    from magenta_release.app.remind import remind as do_remind

    sent = run_action(as_json, lambda: do_remind(open_context(tracking_uri, model_name, by)))

    def human() -> None:
        if not sent.webhooks:
            typer.echo("no webhooks under [notify] in the policy: nothing was sent")
        for r in sent:
            age = "?" if r.age_days is None else f"{r.age_days:.1f}"
            result = {True: "sent", False: "delivery FAILED", None: "not sent"}[r.delivered]
            typer.echo(
                f"version {r.version}: waiting {age} days"
                + (" (expired)" if r.expired else "")
                + f": reminder {result}"
            )
        if not sent:
            typer.echo("no version has waited long enough for a reminder")

    emit(as_json, {"reminders": [r.to_json() for r in sent]}, human)


@app.command()
def show(
    version: VersionArg,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything about one version: live status and aliases, the gate table, the release
    report written at proposal, and the paths (or UI links) of its plots."""
    from magenta_release.app.status import show as do_show
    from magenta_release.cli.render import show_version

    doc = run_action(as_json, lambda: do_show(open_context(tracking_uri, model_name), version))
    emit(as_json, doc, lambda: show_version(doc))


@app.command()
def card(
    version: VersionArg,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The model card of one version: intended use and owner, data, metrics with confidence
    intervals, gate results, proposer and approver, per-segment metrics and the
    disparate-impact check, known limitations. Reads only."""
    from magenta_release.app.card import build, markdown

    doc = run_action(as_json, lambda: build(open_context(tracking_uri, model_name), version))
    emit(as_json, doc, lambda: typer.echo(output_plain(markdown(doc), newlines=True), nl=False))


@app.command()
def repair(
    reason: ReasonOpt,
    by: ByOpt = None,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the registry to what the audit log says, after an interrupted command or an
    out-of-band alias move: records orphaned proposals, moves aliases and statuses back, marks
    runs of dead training processes FAILED, and appends a `repair` event naming who, why and
    what was found."""
    from magenta_release.app.repair import repair as do_repair

    def action() -> RepairReport:
        return do_repair(open_context(tracking_uri, model_name, by), reason)

    result = run_action(as_json, action)

    def human() -> None:
        for line in result.found:
            typer.echo(f"found: {output_plain(line)}")
        for line in result.fixes + [f"run {r} marked FAILED" for r in result.failed_runs]:
            typer.echo(f"fixed: {output_plain(line)}")
        typer.echo(
            f"repaired (audit event {result.event})" if result.event else "nothing to repair"
        )

    emit(as_json, result.to_json(), human)


@app.command()
def history(
    limit: Annotated[
        int, typer.Option(help="How many events, newest first.", min=1, max=100_000)
    ] = 20,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the release log: who did what, when, why, with which evidence."""
    from magenta_release.app.status import history_of
    from magenta_release.cli.render import history_table

    found = run_action(as_json, lambda: history_of(open_context(tracking_uri, model_name), limit))
    emit(as_json, found.to_json(), lambda: history_table(found.entries()))


@audit_app.command("verify")
def audit_verify(
    model_name: AllModelsOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Recompute each audit log's hash chain (every model's, unless --model), check that every
    event was made under a recorded policy version, and check the registry against it (exit 3
    if broken)."""
    from magenta_release.app.status import verify_each

    results = run_action(as_json, lambda: verify_each(each_context(tracking_uri, model_name)))

    def human() -> None:
        for name, result in results.results:
            where = f"{name}: " if len(results.results) > 1 else ""
            if result.ok:
                typer.echo(
                    f"{where}audit log ok: {result.events} events, chain and registry consistent"
                )
            else:
                typer.echo(
                    f"{output_plain(where)}audit log BROKEN ({result.events} events): "
                    f"{output_plain(result.problems[0])}",
                    err=True,
                )
                for extra in result.problems[1:]:
                    typer.echo(f"  also: {output_plain(extra)}", err=True)

    emit(as_json, results.to_json(), human)
    if not results.ok:
        raise typer.Exit(3)
