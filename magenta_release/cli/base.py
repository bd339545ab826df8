"""The command line's shared parts: the Typer apps, the options every command takes, the
one place a `ReleaseError` becomes an `error:` line and an exit code, and how a command opens
its context. Commands live in `cli.setup`, `cli.releases`, `cli.policies`, `cli.ui` and
`cli.demo`; each only collects options, calls one use case and renders."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from magenta_release.core.errors import BadInput, ReleaseError
from magenta_release.core.telemetry import disable_telemetry

if TYPE_CHECKING:
    from magenta_release.app.context import Context
    from magenta_release.app.decide import Transition
    from magenta_release.core.settings import Settings

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


def settings(tracking_uri: str | None) -> Settings:
    from magenta_release.core.settings import Settings

    try:
        return Settings().with_overrides(tracking_uri=tracking_uri)
    except Exception as exc:  # pydantic validation of MAGENTA_RELEASE_* variables
        raise BadInput(f"invalid MAGENTA_RELEASE_* setting ({str(exc).splitlines()[0]})") from exc


def emit(as_json: bool, doc: dict[str, Any], human: Callable[[], None]) -> None:
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


def run_action(as_json: bool, action: Callable[[], T]) -> T:
    """Run a library call; turn expected errors into a one-line message and an exit code."""
    disable_telemetry()
    _quiet_libraries()
    try:
        return action()
    except ReleaseError as exc:
        from magenta_release.cli.render import safe

        # An error names what it found, and that may be text from the store (a status, an
        # event's action): it reaches the terminal with no escape sequence left in it.
        message = safe(exc)
        if as_json:
            sys.stdout.write(json.dumps({"error": message, "exit_code": exc.exit_code}) + "\n")
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted; nothing further was written", err=True)
        raise typer.Exit(130) from None


def warn_unverified(ctx: Context) -> None:
    """Embedded mode has no login: say so where a name decides something."""
    if ctx.settings.is_local:
        typer.echo(
            "warning: embedded store: identity is not verified here (--by / "
            "MAGENTA_RELEASE_USER is a typed name); a tracking server verifies it",
            err=True,
        )


# Start-up: Python's cyclic collector makes full passes over every object the imports create
# (four during an MLflow import). The console script collects rarely while it starts
# (`quiet_start`), then, once the store is open, freezes what start-up made (never scanned
# again, https://docs.python.org/3/library/gc.html#gc.freeze) and collects as usual.
START_THRESHOLD = 100_000
_DEFAULT_THRESHOLD = gc.get_threshold()


def quiet_start() -> None:
    """Fewer collections while the command starts (the console script only)."""
    gc.set_threshold(START_THRESHOLD, *_DEFAULT_THRESHOLD[1:])


def settle() -> None:
    """Start-up is over: freeze its objects and collect as usual from here."""
    if gc.get_threshold()[0] == START_THRESHOLD:
        gc.freeze()
        gc.set_threshold(*_DEFAULT_THRESHOLD)


def open_context(
    tracking_uri: str | None, model: str | None = None, by: str | None = None
) -> Context:
    """The context a command works on: the store named by --tracking-uri (or the settings),
    the model named by --model (else the only one governed), the actor named by --by."""
    from magenta_release.app.context import Context

    ctx = Context.open(settings(tracking_uri), model, by)
    settle()
    return ctx


def open_store(tracking_uri: str | None) -> Any:
    """The gateway to the store, for commands that name the model in their input."""
    from magenta_release.io.store import Store

    store = Store.open(settings(tracking_uri))
    settle()
    return store


def connect(tracking_uri: str | None) -> str:
    """The tracking URI of an existing store (no model needed)."""
    from magenta_release.io.store import Store

    found = settings(tracking_uri)
    Store.connect(found)
    return found.resolved_tracking_uri()


def each_context(tracking_uri: str | None, model: str | None) -> list[Context]:
    """A context for --model (else MAGENTA_RELEASE_MODEL), or one for each model the store
    governs, sorted by name."""
    from magenta_release.app.context import Context
    from magenta_release.io.store import Store

    found = settings(tracking_uri)
    contexts = Context.each(Store.open(found), model or found.model)
    settle()
    return contexts


def model_selector(text: str) -> tuple[str | None, str]:
    """`predict --model`: `champion` / `3` of the default model, or `NAME@alias` / `NAME/3`."""
    for sep in ("@", "/"):
        name, found, selector = text.rpartition(sep)
        if found and name and selector:
            return name, selector
    return None, text


def output_plain(text: str, *, newlines: bool = False) -> str:
    """Text from the store for a plain terminal line (no escape sequences, see `render.safe`)."""
    from magenta_release.cli.render import safe

    return safe(text, newlines=newlines)


VersionArg = Annotated[str, typer.Argument(help="Model version number.", show_default=False)]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def confirm_with(yes: bool, as_json: bool, render: Callable[[dict[str, Any]], None]) -> Any:
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


def show_summary(summary: dict[str, Any]) -> None:
    from magenta_release.cli.render import console, gates_table, plain

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
        from magenta_release.core.metrics import HEADLINE_METRICS

        for m in HEADLINE_METRICS:
            a, b = rescored["challenger"].get(m), rescored["champion"].get(m)
            if isinstance(a, float | int) and isinstance(b, float | int):
                out.print(f"  {m:<11} challenger {a:.4f}  champion {b:.4f}  Δ {a - b:+.4f}")
    if summary.get("gates"):
        gates_table("Gates at proposal", summary["gates"])


def transition_doc(t: Transition) -> dict[str, Any]:
    return t.to_json()


def say_transition(t: Transition) -> None:
    from magenta_release.cli.render import safe

    typer.echo(
        safe(
            f"{t.action}: version {t.version} is {t.status}; champion "
            f"{t.champion if t.champion is not None else 'none'}, previous "
            f"{t.previous if t.previous is not None else 'none'} (audit event {t.event.seq})"
        )
    )
