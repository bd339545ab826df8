"""Commands that set up, train, compare, score and check: init, train, runs, compare, gc,
health, predict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from magenta_release.cli.base import (
    ByOpt,
    JsonOpt,
    ModelOpt,
    UriOpt,
    app,
    emit,
    model_selector,
    open_context,
    output_plain,
    run_action,
    settings,
)
from magenta_release.core.limits import MAX_ROWS, MAX_RUNS, MIN_ROWS

if TYPE_CHECKING:
    from magenta_release.app.predict import Prediction
    from magenta_release.app.train import TrainResult


@app.command()
def init(tracking_uri: UriOpt = None, as_json: JsonOpt = False) -> None:
    """Create the store (SQLite tracking + registry, artifact folder) and govern the model
    named in the policy file (MAGENTA_RELEASE_POLICY, else the package's template
    release-policy.toml): the file becomes that model's stored policy v1 and its experiment
    is created.

    A model that already has a stored policy is left as it is (change it with `policy set`);
    on an initialised store init changes nothing.
    """
    from magenta_release.app.init import init as do_init

    result = run_action(as_json, lambda: do_init(settings(tracking_uri)))
    p = result.policy
    if result.note:
        typer.echo(f"note: {result.note}", err=True)
    emit(
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
    from magenta_release.cli.render import progress

    def action() -> TrainResult:
        from magenta_release.app.train import train as do_train

        ctx = open_context(tracking_uri, model_name, by)
        with progress(enabled=not quiet) as say:
            return do_train(
                ctx,
                data=data,
                rows=rows,
                seed=seed,
                params=param or [],
                run_name=run_name,
                progress=say,
            )

    result = run_action(as_json, action)

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
    emit(as_json, result.to_json(), human)


@app.command()
def runs(
    last: Annotated[int, typer.Option(help="How many recent runs.", min=1, max=MAX_RUNS)] = 10,
    model_name: ModelOpt = None,
    tracking_uri: UriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the most recent training runs."""
    from magenta_release.app.compare import runs as do_runs
    from magenta_release.cli.render import runs_table

    found = run_action(as_json, lambda: do_runs(open_context(tracking_uri, model_name), last))
    emit(as_json, found.to_json(), lambda: runs_table(found.runs))


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
    from magenta_release.app.compare import compare as do_compare
    from magenta_release.cli.render import comparison_table

    result = run_action(
        as_json,
        lambda: do_compare(
            open_context(tracking_uri, model_name),
            run_ids or [],
            last=last,
            top=top,
            metric=metric,
            plot=plot,
        ),
    )

    def human() -> None:
        comparison_table(result)
        if result.plot is not None:
            typer.echo(f"plot: {result.plot}")

    emit(as_json, result.to_json(), human)


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
    from magenta_release.app.gc import gc as do_gc

    result = run_action(
        as_json,
        lambda: do_gc(
            open_context(tracking_uri, model_name), older_than_days=older_than, apply=apply
        ),
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

    emit(as_json, result.to_json(), human)


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
    from magenta_release.app.health import check

    result = run_action(as_json, lambda: check(open_context(tracking_uri, model_name, by), data))

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

    emit(as_json, result.to_json(), human)
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
    from magenta_release.app.predict import predict as do_predict

    def action() -> Prediction:
        name, selector = model_selector(model)
        return do_predict(open_context(tracking_uri, name), input, output, selector)

    result = run_action(as_json, action)
    emit(
        as_json,
        result.to_json(),
        lambda: typer.echo(
            f"scored {result.rows:,} rows with version {result.model_version} -> {result.output}"
            + (
                "; levels never seen in training: "
                + ", ".join(f"{c} {n:,} rows" for c, n in result.unseen_levels.items())
                if result.unseen_levels
                else ""
            )
        ),
    )
