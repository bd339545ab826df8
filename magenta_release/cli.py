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
from typing import Annotated, Any, TypeVar

import typer

from magenta_release.errors import BadInput, ReleaseError
from magenta_release.settings import Settings, disable_telemetry

app = typer.Typer(
    name="magenta-release",
    help="Tracked training and a gated, four-eyes, audited model release process on MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
audit_app = typer.Typer(help="Check the tamper-evident release log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
UriOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI (else MLFLOW_TRACKING_URI, else the local store "
    "under MAGENTA_RELEASE_HOME, default ./mlruns).", show_default=False)]
ByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who is acting (else MAGENTA_RELEASE_USER, else the OS login).")]


def _settings(tracking_uri: str | None) -> Settings:
    try:
        return Settings().with_overrides(tracking_uri=tracking_uri)
    except Exception as exc:  # pydantic validation of MAGENTA_RELEASE_* variables
        raise BadInput(f"invalid MAGENTA_RELEASE_* setting ({str(exc).splitlines()[0]})") from exc


def _emit(as_json: bool, doc: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        human()


def _run(as_json: bool, action: Callable[[], T]) -> T:
    """Run a library call; turn expected errors into a one-line message and an exit code."""
    disable_telemetry()
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


def _open(tracking_uri: str | None) -> Any:
    from magenta_release.store import Store

    return Store.open(_settings(tracking_uri))


@app.command()
def init(tracking_uri: UriOpt = None, as_json: JsonOpt = False) -> None:
    """Create the store: SQLite tracking + registry, artifact folder, experiment, policy.

    Idempotent: running it on an existing store changes nothing.
    """
    from magenta_release.init import init as do_init

    result = _run(as_json, lambda: do_init(_settings(tracking_uri)))
    _emit(as_json, result.to_json(), lambda: typer.echo(
        f"{'created' if result.created else 'store ready'}: {result.tracking_uri}\n"
        f"artifacts: {result.artifact_location}\npolicy:    {result.policy_path}"))


@app.command()
def train(
    rows: Annotated[int, typer.Option(help="Accounts to generate.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed for data, split and model.")] = 42,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="XGBoost parameter KEY=VALUE (repeatable), e.g. max_depth=6.")] = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the MLflow run.")] = None,
    by: ByOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate seeded data, fit the model, evaluate it and track everything in MLflow."""
    from magenta_release.output import progress

    def action() -> Any:
        from magenta_release.train import train as do_train

        store = _open(tracking_uri)
        with progress() as say:
            return do_train(store, rows=rows, seed=seed, params=param or [], run_name=run_name,
                            by=by, progress=say)

    result = _run(as_json, action)

    def human() -> None:
        m = result.metrics
        typer.echo(f"run {result.run_id} ({result.run_name})\n"
                   f"roc_auc {m['roc_auc']:.4f}  pr_auc {m['pr_auc']:.4f}  "
                   f"lift@10 {m['lift_at_10']:.2f}  brier {m['brier']:.4f}\n"
                   f"dataset {result.dataset_digest[:16]}  ({result.dataset_uri})")

    _emit(as_json, result.to_json(), human)


@app.command()
def runs(
    last: Annotated[int, typer.Option(help="How many recent runs.")] = 10,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the most recent training runs."""
    from magenta_release.compare import runs as do_runs
    from magenta_release.output import runs_table

    found = _run(as_json, lambda: do_runs(_open(tracking_uri), last))
    _emit(as_json, {"runs": [{"run_id": r.run_id, "run_name": r.name, "status": r.status,
                              "metrics": r.metrics, "dataset_digest": r.dataset_sha256}
                             for r in found]}, lambda: runs_table(found))


@app.command()
def compare(
    run_ids: Annotated[list[str] | None, typer.Argument(
        help="Runs to compare (default: the 5 most recent).", show_default=False)] = None,
    last: Annotated[int | None, typer.Option(help="The N most recent finished runs.")] = None,
    top: Annotated[int | None, typer.Option(help="The N best runs by --metric.")] = None,
    metric: Annotated[str | None, typer.Option(
        help="Metric to rank by (default: the policy's primary metric).")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write a PNG overlaying the runs' ROC and PR curves.")] = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare runs side by side: metrics (best highlighted, Δ vs champion), differing params,
    and whether they were trained on the same data."""
    from magenta_release.compare import compare as do_compare
    from magenta_release.compare import write_plot
    from magenta_release.output import comparison_table

    def action() -> Any:
        store = _open(tracking_uri)
        result = do_compare(store, run_ids or [], last=last, top=top, metric=metric)
        if plot is not None:
            write_plot(store, result, plot)
        return result

    result = _run(as_json, action)
    doc = result.to_json()
    if plot is not None:
        doc["plot"] = str(plot)
    _emit(as_json, doc, lambda: comparison_table(result))


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: UriOpt = None,
) -> None:
    """Open the MLflow UI for the store on 127.0.0.1 (telemetry off)."""
    import os
    import subprocess

    settings = _settings(tracking_uri)
    uri = _run(False, lambda: _open(tracking_uri).tracking_uri)
    if not 1024 <= port <= 65535:
        typer.echo(f"error: --port {port} is out of range; use 1024-65535", err=True)
        raise typer.Exit(2)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", uri, "--workers", "1"]
    if settings.is_local:
        cmd += ["--default-artifact-root", settings.artifact_root.as_uri()]
    typer.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C to stop)", err=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    raise typer.Exit(subprocess.call(cmd, env=env))


def main() -> None:
    """Console-script entry point."""
    disable_telemetry()
    app()


if __name__ == "__main__":
    main()
