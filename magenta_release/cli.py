"""The `magenta-release` command line: a thin Typer layer over the library.

Commands only collect options and call one library function; `ReleaseError` is caught at the
edge and becomes `error: ...` on stderr plus its exit code. MLflow is imported lazily (never at
import time) so `--help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from magenta_release.errors import BadInput, ReleaseError
from magenta_release.limits import MAX_ROWS, MAX_RUNS, MIN_ROWS
from magenta_release.telemetry import disable_telemetry

if TYPE_CHECKING:
    from magenta_release.settings import Settings

app = typer.Typer(
    name="magenta-release",
    help="Tracked training and a gated, four-eyes, audited model release process on MLflow.",
    no_args_is_help=True,
    # Help texts name policy sections such as [data]: print brackets, do not parse markup.
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
audit_app = typer.Typer(help="Check the tamper-evident release log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
policy_app = typer.Typer(
    help="The release policy stored in MLflow: show it, list its versions, set a new one.",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
UriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (else MLFLOW_TRACKING_URI, else the local store "
        "under MAGENTA_RELEASE_HOME, default ./mlruns).",
        show_default=False,
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Registered model to act on (else MAGENTA_RELEASE_MODEL, else the only model "
        "the store governs).",
        show_default=False,
    ),
]
AllModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Registered model to show (else MAGENTA_RELEASE_MODEL, else every model the "
        "store governs).",
        show_default=False,
    ),
]
CheckModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Must equal the file's [model] registered_name (a check: the file decides).",
        show_default=False,
    ),
]
ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who is acting (else MAGENTA_RELEASE_USER, else the OS login)."),
]


def _settings(tracking_uri: str | None) -> Settings:
    from magenta_release.settings import Settings

    try:
        return Settings().with_overrides(tracking_uri=tracking_uri)
    except Exception as exc:  # pydantic validation of MAGENTA_RELEASE_* variables
        raise BadInput(f"invalid MAGENTA_RELEASE_* setting ({str(exc).splitlines()[0]})") from exc


def _emit(as_json: bool, doc: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        human()


VERBOSE = {"on": False}


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show MLflow's own log lines and tracebacks on stderr."
        ),
    ] = False,
) -> None:
    """Tracked training and a gated, four-eyes, audited model release process on MLflow."""
    VERBOSE["on"] = verbose


def _quiet_libraries() -> None:
    """stderr is ours: one error line, not MLflow's INFO lines or a logged SQLAlchemy
    traceback, unless --verbose."""
    import logging

    level = logging.INFO if VERBOSE["on"] else logging.CRITICAL
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(level)


def _run(as_json: bool, action: Callable[[], T]) -> T:
    """Run a library call; turn expected errors into a one-line message and an exit code."""
    disable_telemetry()
    _quiet_libraries()
    try:
        return action()
    except ReleaseError as exc:
        message = str(exc).replace("\n", " ")
        if as_json:
            sys.stdout.write(json.dumps({"error": message, "exit_code": exc.exit_code}) + "\n")
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted; nothing further was written", err=True)
        raise typer.Exit(130) from None


def _warn_unverified(store: Any) -> None:
    """Embedded mode has no login: say so where a name decides something."""
    if store.settings.is_local:
        typer.echo(
            "warning: embedded store: identity is not verified here (--by / "
            "MAGENTA_RELEASE_USER is a typed name); a tracking server verifies it",
            err=True,
        )


def _open(tracking_uri: str | None, model: str | None = None) -> Any:
    from magenta_release.store import Store

    return Store.open(_settings(tracking_uri), model)


def _connect(tracking_uri: str | None) -> str:
    """The tracking URI of an existing store (no model needed)."""
    from magenta_release.store import Store

    settings = _settings(tracking_uri)
    Store.connect(settings)
    return settings.resolved_tracking_uri()


def _names(tracking_uri: str | None, model: str | None) -> list[str]:
    """--model, else MAGENTA_RELEASE_MODEL, else every model the store governs (sorted)."""
    from magenta_release import policy_store
    from magenta_release.store import Store

    settings = _settings(tracking_uri)
    chosen = model or settings.model
    if chosen:
        return [chosen]
    return (
        [policy_store.default_model(Store.connect(settings), None)]
        if not (names := policy_store.governed_models(Store.connect(settings)))
        else names
    )


def _each(tracking_uri: str | None, model: str | None) -> list[Any]:
    """The store bound to --model, or to each model it governs (sorted by name)."""
    from magenta_release.store import Store

    settings = _settings(tracking_uri)
    return [Store.open(settings, name) for name in _names(tracking_uri, model)]


def _model_selector(text: str) -> tuple[str | None, str]:
    """`predict --model`: `champion` / `3` of the default model, or `NAME@alias` / `NAME/3`."""
    for sep in ("@", "/"):
        name, found, selector = text.rpartition(sep)
        if found and name and selector:
            return name, selector
    return None, text


@app.command()
def init(tracking_uri: UriOpt = None, as_json: JsonOpt = False) -> None:
    """Create the store (SQLite tracking + registry, artifact folder) and govern the model
    named in the policy file (MAGENTA_RELEASE_POLICY, else mlruns_template/release-policy.toml):
    the file becomes that model's stored policy v1 and its experiment is created.

    A model that already has a stored policy is left as it is (change it with `policy set`);
    on an initialised store init changes nothing.
    """
    from magenta_release.init import init as do_init

    result = _run(as_json, lambda: do_init(_settings(tracking_uri)))
    p = result.policy
    if result.note:
        typer.echo(f"note: {result.note}", err=True)
    _emit(
        as_json,
        result.to_json(),
        lambda: typer.echo(
            f"{'created' if result.created else 'store ready'}: {result.tracking_uri}\n"
            f"artifacts: {result.artifact_location}\n"
            f"model:     {result.model} (policy v{p.version}, {p.sha256[:12]}, set by "
            f"{output_plain(p.actor)})\n"
            "change the policy with: magenta-release policy show > policy.toml; edit; "
            "magenta-release policy set policy.toml --reason ..."
        ),
    )


def output_plain(text: str) -> str:
    from magenta_release.output import plain

    return str(plain(text))


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
    audit event. Only the current policy's [approval] policy_owners may do it; the first
    policy of a new model is stored by whoever may create a registered model. Versions
    proposed under the old policy must be proposed again before they can be approved."""
    from magenta_release.policies import set_policy

    result = _run(
        as_json,
        lambda: set_policy(_settings(tracking_uri), file, reason=reason, by=by, model=model_name),
    )
    r = result.record

    def human() -> None:
        if not result.changed:
            typer.echo(f"{r.model}: policy v{r.version} is already this file; nothing changed")
            return
        typer.echo(
            f"{r.model}: policy v{r.version} ({r.sha256[:12]}) in force, set by "
            f"{output_plain(r.actor)}"
        )

    _emit(as_json, result.to_json(), human)


@policy_app.command("show")
def policy_show(
    model_name: ModelOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Print the policy in force, exactly as stored (pipe it to a file to edit it)."""
    from magenta_release.policies import show

    record, text = _run(as_json, lambda: show(_open(tracking_uri, model_name)))
    _emit(as_json, {**record.to_json(), "toml": text}, lambda: typer.echo(text, nl=False))


@policy_app.command("history")
def policy_history(
    model_name: ModelOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Every version of the policy, newest first: who set it, when and why."""
    from magenta_release.policies import history

    found = _run(as_json, lambda: history(_open(tracking_uri, model_name)))

    def human() -> None:
        for r in found:
            typer.echo(
                f"v{r.version}  {r.time[:19]}  {r.sha256[:12]}  {output_plain(r.actor)}: "
                f"{output_plain(r.reason)}"
            )

    _emit(as_json, {"versions": [r.to_json() for r in found]}, human)


@app.command()
def train(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="The table to train on: a parquet file or folder, a .csv file, "
            "duckdb:///PATH.duckdb?table=NAME, or an fsspec URL such as gs://bucket/features/. "
            "Columns follow [data] in the release policy. Default: the built-in generator.",
            show_default=False,
        ),
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            help="Accounts to generate (built-in generator only; default 100,000).",
            show_default=False,
            min=MIN_ROWS,
            max=MAX_ROWS,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the model (and the generator).")] = 42,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="XGBoost parameter KEY=VALUE (repeatable), e.g. max_depth=6."),
    ] = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the MLflow run.")] = None,
    by: ByOpt = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print only the run id (for RUN=$(magenta-release train -q))."
        ),
    ] = False,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a candidate on a table, evaluate it on held-out rows and track everything in
    MLflow (params, metrics, plots, the skops model, the table's URI and content digest; never
    rows). Evaluation rows are chosen by a hash of the first identifier, so the gates can
    re-read exactly them later.

    Example (the demo's table): magenta-release train --data
    "duckdb://demo/analytics.duckdb?table=customer_features"
    """
    from magenta_release.output import progress

    def action() -> Any:
        from magenta_release.train import train as do_train

        store = _open(tracking_uri, model_name)
        with progress(enabled=not quiet) as say:
            return do_train(
                store,
                data=data,
                rows=rows,
                seed=seed,
                params=param or [],
                run_name=run_name,
                by=by,
                progress=say,
            )

    result = _run(as_json, action)

    def human() -> None:
        m = result.metrics
        typer.echo(
            f"run {result.run_id} ({result.run_name})\n"
            f"roc_auc {m['roc_auc']:.4f}  pr_auc {m['pr_auc']:.4f}  "
            f"lift@10 {m['lift_at_10']:.2f}  brier {m['brier']:.4f}\n"
            f"data {result.dataset_digest[:16]}  ({result.dataset_uri})\n"
            f"next: magenta-release compare --last 2, or "
            f"magenta-release propose {result.run_id[:12]} --note ..."
        )

    if quiet and not as_json:
        typer.echo(result.run_id)
        return
    _emit(as_json, result.to_json(), human)


@app.command()
def runs(
    last: Annotated[int, typer.Option(help="How many recent runs.", min=1, max=MAX_RUNS)] = 10,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the most recent training runs."""
    from magenta_release.compare import runs as do_runs
    from magenta_release.output import runs_table

    found = _run(as_json, lambda: do_runs(_open(tracking_uri, model_name), last))
    _emit(
        as_json,
        {
            "runs": [
                {
                    "run_id": r.run_id,
                    "run_name": r.name,
                    "status": r.status,
                    "metrics": r.metrics,
                    "dataset_digest": r.dataset_sha256,
                }
                for r in found
            ]
        },
        lambda: runs_table(found),
    )


@app.command()
def compare(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Runs to compare (default: the 5 most recent).", show_default=False),
    ] = None,
    last: Annotated[
        int | None, typer.Option(help="The N most recent finished runs.", min=1, max=MAX_RUNS)
    ] = None,
    top: Annotated[
        int | None, typer.Option(help="The N best runs by --metric.", min=1, max=MAX_RUNS)
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="Metric to rank by (default: the policy's primary metric).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG overlaying the runs' ROC and PR curves.")
    ] = None,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare runs side by side: metrics (best highlighted, Δ vs champion), differing params,
    and whether they were trained on the same data."""
    from magenta_release.compare import compare as do_compare
    from magenta_release.compare import write_plot
    from magenta_release.output import comparison_table

    def action() -> Any:
        store = _open(tracking_uri, model_name)
        result = do_compare(store, run_ids or [], last=last, top=top, metric=metric)
        if plot is not None:
            write_plot(store, result, plot)
        return result

    result = _run(as_json, action)
    doc = result.to_json()
    if plot is not None:
        doc["plot"] = str(plot)

    def human() -> None:
        comparison_table(result)
        if plot is not None:
            typer.echo(f"plot: {plot}")

    _emit(as_json, doc, human)


VersionArg = Annotated[str, typer.Argument(help="Model version number.", show_default=False)]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _confirm(yes: bool, as_json: bool, render: Callable[[dict[str, Any]], None]) -> Any:
    """A confirmation callback for approve/rollback: shows the comparison, then asks."""
    if yes:
        return None

    def ask(summary: dict[str, Any]) -> bool:
        if not as_json:
            render(summary)
        try:
            return typer.confirm("Proceed?", default=False, err=True)
        except typer.Abort:
            return False

    return ask


def _show_summary(summary: dict[str, Any]) -> None:
    from magenta_release.output import console, gates_table, plain

    out = console(stderr=True)
    out.print(
        plain(
            f"{summary['model']} version {summary['version']} (run {summary['run_id']}), "
            f"proposed by "
            f"{summary['proposed_by']}; champion now: {summary['champion'] or 'none'}"
        )
    )
    if summary.get("note"):
        out.print(plain(f"note: {summary['note']}"))
    rescored = summary.get("rescored")
    if rescored:
        from magenta_release.evaluate import HEADLINE_METRICS

        for m in HEADLINE_METRICS:
            a, b = rescored["challenger"][m], rescored["champion"][m]
            out.print(f"  {m:<11} challenger {a:.4f}  champion {b:.4f}  Δ {a - b:+.4f}")
    if summary.get("gates"):
        gates_table("Gates at proposal", summary["gates"])


def _transition_doc(t: Any) -> dict[str, Any]:
    return t.to_json()  # type: ignore[no-any-return]


def _say_transition(t: Any) -> None:
    typer.echo(
        f"{t.action}: version {t.version} is {t.status}; champion "
        f"{t.champion if t.champion is not None else 'none'}, previous "
        f"{t.previous if t.previous is not None else 'none'} (audit event {t.event.seq})"
    )


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
    from magenta_release.output import gates_table, progress
    from magenta_release.release import propose as do_propose
    from magenta_release.states import Status

    def action() -> Any:
        store = _open(tracking_uri, model_name)
        _warn_unverified(store)
        with progress() as say:
            say("evaluating the release gates")
            return do_propose(store, run_id, by=by, note=note)

    result = _run(as_json, action)

    def human() -> None:
        gates_table(
            f"Release gates for version {result.version}", [g.to_json() for g in result.gates]
        )
        typer.echo(
            f"version {result.version} is {result.status}"
            + (" (proposed before)" if result.existing else "")
            + (
                f"; approve with: magenta-release approve {result.version} --reason ..."
                if result.status == Status.PENDING
                else ""
            )
        )

    _emit(as_json, result.to_json(), human)
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
    from magenta_release.release import approve as do_approve

    def action() -> Any:
        store = _open(tracking_uri, model_name)
        _warn_unverified(store)
        return do_approve(
            store, version, reason=reason, by=by, confirm=_confirm(yes, as_json, _show_summary)
        )

    result = _run(as_json, action)
    _emit(as_json, _transition_doc(result), lambda: _say_transition(result))


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
    from magenta_release.release import reject as do_reject

    result = _run(
        as_json, lambda: do_reject(_open(tracking_uri, model_name), version, reason=reason, by=by)
    )
    _emit(as_json, _transition_doc(result), lambda: _say_transition(result))


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
    from magenta_release.release import rollback as do_rollback

    def render(s: dict[str, Any]) -> None:
        typer.echo(f"roll back {s['model']}: champion v{s['champion']} to v{s['target']}", err=True)

    result = _run(
        as_json,
        lambda: do_rollback(
            _open(tracking_uri, model_name),
            reason=reason,
            to=to,
            by=by,
            confirm=_confirm(yes, as_json, render),
        ),
    )
    _emit(as_json, _transition_doc(result), lambda: _say_transition(result))


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
    from magenta_release.output import status_table
    from magenta_release.release import status as do_status

    docs = _run(as_json, lambda: [do_status(store) for store in _each(tracking_uri, model_name)])
    if len(docs) == 1:
        _emit(as_json, docs[0], lambda: status_table(docs[0]))
        return

    def human() -> None:
        for doc in docs:
            status_table(doc)

    _emit(as_json, {"models": docs}, human)


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
    from magenta_release.release import remind as do_remind

    def action() -> Any:
        store = _open(tracking_uri, model_name)
        return store, do_remind(store, by=by)

    store, sent = _run(as_json, action)

    def human() -> None:
        if not store.policy.notify.webhooks:
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

    _emit(as_json, {"reminders": [r.to_json() for r in sent]}, human)


@app.command()
def show(
    version: VersionArg,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything about one version: live status and aliases, the gate table, the release
    report written at proposal, and the paths (or UI links) of its plots."""
    from magenta_release.output import show_version
    from magenta_release.release import show as do_show

    doc = _run(as_json, lambda: do_show(_open(tracking_uri, model_name), version))
    _emit(as_json, doc, lambda: show_version(doc))


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
    from magenta_release.card import build, markdown

    doc = _run(as_json, lambda: build(_open(tracking_uri, model_name), version))
    _emit(as_json, doc, lambda: typer.echo(markdown(doc), nl=False))


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
    from magenta_release.repair import repair as do_repair

    def action() -> Any:
        store = _open(tracking_uri, model_name)
        return do_repair(store, store.actor(by), reason)

    result = _run(as_json, action)

    def human() -> None:
        for line in result.found:
            typer.echo(f"found: {line}")
        for line in result.fixes + [f"run {r} marked FAILED" for r in result.failed_runs]:
            typer.echo(f"fixed: {line}")
        typer.echo(
            f"repaired (audit event {result.event})" if result.event else "nothing to repair"
        )

    _emit(as_json, result.to_json(), human)


@app.command()
def gc(
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            help="Only runs started more than this many days ago.",
            min=0,
            max=36_500,
        ),
    ] = 30,
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete (default: only list what would be deleted).")
    ] = False,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Free artifact storage of runs that were never proposed. Dry-run unless --apply;
    registered versions, their runs and the audit log are never touched."""
    from magenta_release.gc import gc as do_gc

    result = _run(
        as_json,
        lambda: do_gc(_open(tracking_uri, model_name), older_than_days=older_than, apply=apply),
    )

    def human() -> None:
        verb = "deleted" if result.applied else "would delete"
        for r in result.runs:
            typer.echo(
                f"{verb} {r['bytes']:>12,} bytes  run {r['run_id']} ({r['run_name']}, "
                f"{r['age_days']} days)"
            )
        typer.echo(
            f"{verb} {result.bytes:,} bytes in {len(result.runs)} runs"
            + ("" if result.applied else "; run again with --apply to delete")
        )

    _emit(as_json, result.to_json(), human)


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
    from magenta_release.output import history_table
    from magenta_release.release import history as do_history

    found = _run(
        as_json, lambda: [e.to_json() for e in do_history(_open(tracking_uri, model_name), limit)]
    )
    _emit(as_json, {"events": found}, lambda: history_table(found))


@audit_app.command("verify")
def audit_verify(
    model_name: AllModelsOpt = None, tracking_uri: UriOpt = None, as_json: JsonOpt = False
) -> None:
    """Recompute each audit log's hash chain (every model's, unless --model), check that every
    event was made under a recorded policy version, and check the registry against it (exit 3
    if broken)."""
    from magenta_release.lifecycle import verify

    def each() -> list[tuple[str, Any]]:
        from magenta_release.audit import Verification
        from magenta_release.errors import IntegrityViolation
        from magenta_release.store import Store

        settings = _settings(tracking_uri)
        out = []
        for name in _names(tracking_uri, model_name):
            try:  # a model whose stored policy was edited cannot even be opened: report it
                out.append((name, verify(Store.open(settings, name))))
            except IntegrityViolation as exc:
                out.append((name, Verification(False, 0, [str(exc)])))
        return out

    results = _run(as_json, each)

    def human() -> None:
        for name, result in results:
            where = f"{name}: " if len(results) > 1 else ""
            if result.ok:
                typer.echo(
                    f"{where}audit log ok: {result.events} events, chain and registry consistent"
                )
            else:
                typer.echo(
                    f"{where}audit log BROKEN ({result.events} events): {result.problems[0]}",
                    err=True,
                )
                for extra in result.problems[1:]:
                    typer.echo(f"  also: {extra}", err=True)

    if len(results) == 1:
        doc = results[0][1].to_json()
    else:
        doc = {
            "ok": all(r.ok for _, r in results),
            "models": {name: r.to_json() for name, r in results},
        }
    _emit(as_json, doc, human)
    if not all(r.ok for _, r in results):
        raise typer.Exit(3)


@app.command()
def health(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="The labelled rows to judge the champion on: a parquet file or folder, a .csv "
            "file, duckdb:///PATH?table=NAME or an fsspec URL (the newest labelled export).",
        ),
    ],
    by: ByOpt = None,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the champion after release: re-score it on rows whose label window closed
    ([health] in the policy), the primary metric with a bootstrap CI against its value at
    release, and PSI drift of its score and inputs against its training rows. Exit 1 on a
    breach, naming the failing features; the health_alert webhooks are told.

    Not a read command: each check is logged as an MLflow run in the experiment
    <model>-health (with a plot over time). It never moves an alias.
    """
    from magenta_release.health import check

    result = _run(as_json, lambda: check(_open(tracking_uri, model_name), data, by=by))

    def human() -> None:
        m = result.metric
        level = int(m.confidence * 100)
        release = f", at release {m.at_release:.4f}" if m.at_release is not None else ""
        typer.echo(
            f"champion v{result.version} on {result.rows:,} labelled rows: {m.name} "
            f"{m.value:.4f} ({level}% CI [{m.ci_low:.4f}, {m.ci_high:.4f}]{release})"
        )
        typer.echo(f"rows: {result.rows_note}")
        if result.psi:
            worst = sorted(result.psi.items(), key=lambda kv: -kv[1])[:5]
            shown = ", ".join(f"{k} {v:.3f}" for k, v in worst)
            typer.echo(f"PSI (max {result.max_psi:g}): {shown}")
        typer.echo(f"PSI baseline: {result.psi_baseline}")
        typer.echo(f"logged: run {result.health_run_id} in experiment {result.model}-health")
        if result.passed:
            typer.echo("healthy")

    _emit(as_json, result.to_json(), human)
    if not result.passed:
        failing = f" (failing features: {', '.join(result.failing)})" if result.failing else ""
        typer.echo(
            f"error: champion v{result.version} health check failed{failing}: "
            f"{'; '.join(result.breaches)}; nothing was moved: retrain on recent rows and "
            "propose, or roll back (magenta-release rollback --reason ...)",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
def predict(
    input: Annotated[
        str,
        typer.Option(
            "--input",
            help="Customers to score: a parquet file or folder, a .csv file, "
            "duckdb:///PATH?table=NAME or an fsspec URL. Read in batches, any size.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", help="Where to write scores (.parquet or .csv).")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="What scores: champion, previous or a version number, of the store's only "
            "model; NAME@champion or NAME/VERSION (MLflow's models:/ form) for another one.",
        ),
    ] = "champion",
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a table with a verified model version (SHA-256 checked before loading), streaming
    record batches; each output row carries the customer's identifiers, the score and the
    model version that scored it, in input order."""
    from magenta_release.predict import predict as do_predict

    def action() -> Any:
        name, selector = _model_selector(model)
        return do_predict(_open(tracking_uri, name), input, output, selector)

    result = _run(as_json, action)
    _emit(
        as_json,
        result.to_json(),
        lambda: typer.echo(
            f"scored {result.rows:,} rows with version {result.model_version} -> {result.output}"
        ),
    )


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Accounts in the generated table.")] = 50_000,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Store folder for the demo (default ./demo/mlruns). It must be empty or a "
            "previous demo's store; any other store is refused.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The whole release loop in a throwaway store: write a generated table to DuckDB, train
    two candidates from it, compare, propose as a data scientist, approve as the release
    manager, predict, status and history. Never touches your store or a server."""
    from magenta_release.demo import run_demo

    _run(False, lambda: run_demo(_settings(None), rows, home))


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1024, max=65535)] = 5000,
    tracking_uri: UriOpt = None,
) -> None:
    """Open the MLflow UI for the store on 127.0.0.1 (telemetry, AI Gateway, remote Assistant
    and jobs off). Prints the URL once the server answers; Ctrl-C or SIGTERM stops it and all
    its workers."""
    import os

    settings = _settings(tracking_uri)
    uri = _run(False, lambda: _connect(tracking_uri))
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        uri,
        "--workers",
        "1",
        "--x-frame-options",
        "DENY",
    ]
    if settings.is_local:
        cmd += ["--default-artifact-root", settings.artifact_root.as_uri()]
    if not _port_free(port):
        typer.echo(f"error: port {port} is in use; choose another with --port", err=True)
        raise typer.Exit(2)
    # Started as the deploy image starts it: no AI Gateway (it stores provider keys and can
    # send experiment data to model providers outside the EU), no remote Assistant, no jobs.
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_ENABLE_AI_GATEWAY": "false",
        "MLFLOW_ENABLE_REMOTE_ASSISTANT": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    raise typer.Exit(_serve(cmd, env, port))


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(cmd: list[str], env: dict[str, str], port: int) -> int:
    """Run the server in its own process group; say the URL once it answers; stop the whole
    group (MLflow's workers included) on Ctrl-C or SIGTERM, leaving nothing listening."""
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310
                    typer.echo(f"MLflow UI on {url} (Ctrl-C to stop)", err=True)
                    break
            except OSError:
                time.sleep(0.3)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code. Usage errors become one `error:` line (exit 2)
    instead of click's multi-line box."""
    # Typer vendors click; its UsageError is the base of every argument/option error.
    from typer._click.exceptions import UsageError

    disable_telemetry()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="magenta-release", standalone_mode=False)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "magenta-release"
        message = exc.format_message().replace("\n", " ").strip().rstrip(".")
        typer.echo(f"error: {message}; see `{where} --help`", err=True)
        return 2
    except typer.Abort:
        typer.echo("error: aborted; nothing was changed", err=True)
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
