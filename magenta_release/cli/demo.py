"""`demo`: the whole release loop in a throwaway store, printed as a person would see it. An
edge, like the rest of the command line: it calls the use cases one after another, as a person
would type them, and renders what each returns.

The demo walks the real data path: it writes the generator's table into a DuckDB database (as
the team's dbt build would) and trains, gates and scores from there. It never touches a store
that matters: it refuses a non-local tracking URI and any store holding a champion or runs it
did not create."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from magenta_release.cli.base import app, run_action, settings
from magenta_release.core.errors import PolicyRefused

if TYPE_CHECKING:
    from magenta_release.core.settings import Settings

DATA_SCIENTIST = "data-scientist"
RELEASE_MANAGER = "release-manager"
MARKER = ".magenta-demo"  # a store the demo created itself, and may therefore replace
DEMO_DIR = Path("demo")


def _step(text: str) -> None:
    from magenta_release.cli.render import console

    console().rule(f"[bold]{text}")


def write_customers(path: str | Path, seed: int, rows: int) -> Path:
    """Current customers to score: identifiers and features, no label. Stays outside MLflow."""
    from magenta_release.core.synthetic import FEATURES, IDENTIFIERS, generate

    path = Path(path)
    table = generate(seed, rows).table
    path.parent.mkdir(parents=True, exist_ok=True)
    table.loc[:, [*IDENTIFIERS, *FEATURES]].to_parquet(path, index=False)
    return path


def demo_home(chosen: Settings, home: Path | None) -> Path:
    """The demo's own store folder; PolicyRefused (exit 1) for anything that may matter."""
    if chosen.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        raise PolicyRefused(
            "demo runs only on a throwaway local store, but a tracking URI is set "
            f"({chosen.resolved_tracking_uri()}); unset MLFLOW_TRACKING_URI / --tracking-uri"
        )
    target = (home or DEMO_DIR / "mlruns").expanduser().resolve()
    if target.exists() and any(target.iterdir()) and not (target / MARKER).exists():
        raise PolicyRefused(
            f"demo refuses {target}: it is a store the demo did not create (it may hold a "
            "champion or real runs); give an empty folder with --home"
        )
    if (target / MARKER).exists():
        shutil.rmtree(target)  # the previous demo's store: throwaway by construction
    target.mkdir(parents=True, exist_ok=True)
    (target / MARKER).write_text("created by `magenta-release demo`; safe to delete\n")
    return target


def run_demo(chosen: Settings, rows: int = 50_000, home: Path | None = None) -> Path:
    """The release loop, step by step, in the demo's own store; returns the store folder."""
    from magenta_release.app.compare import compare
    from magenta_release.app.context import Context
    from magenta_release.app.decide import approve
    from magenta_release.app.init import init
    from magenta_release.app.predict import predict
    from magenta_release.app.propose import propose
    from magenta_release.app.status import history, status
    from magenta_release.app.train import train
    from magenta_release.cli import render as output
    from magenta_release.core.settings import Settings
    from magenta_release.core.states import Status
    from magenta_release.core.synthetic import generate
    from magenta_release.io.sources import write_duckdb

    store_home = demo_home(chosen, home)
    own = Settings(home=store_home)
    work = store_home.parent
    say = output.console().print
    _step("1. init: a throwaway embedded store, and the release policy stored in it")
    created = init(own)
    say(f"demo store: {store_home} (look at it with MAGENTA_RELEASE_HOME={store_home})")
    say(
        f"policy v{created.policy.version} of {created.model} ({created.policy.sha256[:12]}): "
        "changed only by `magenta-release policy set FILE --reason ...`"
    )

    def command(person: str) -> Context:
        # one context per step, as each step is one command a person types
        return Context.open(own, created.model, person)

    scientist = command(DATA_SCIENTIST)

    _step(f"2. the team's table: {rows:,} generated accounts written to DuckDB")
    database = work / "analytics.duckdb"
    features = write_duckdb(generate(42, rows).table, database, "customer_features")
    customers = generate(2024, 10_000).table.drop(columns=[scientist.policy.data.target])
    current = write_duckdb(customers, database, "current_customers")
    say(f"training table: {features}\nscoring table:  {current}")

    _step("3. train two candidates on the same table (different tree depth)")
    runs = []
    for depth in (3, 5):
        with output.progress() as progress:
            r = train(
                command(DATA_SCIENTIST),
                data=features,
                seed=42,
                params=[f"max_depth={depth}"],
                run_name=f"demo-depth{depth}",
                progress=progress,
            )
        say(f"run {r.run_id}: roc_auc {r.metrics['roc_auc']:.4f}")
        runs.append(r)

    _step("4. compare")
    comparison = compare(command(DATA_SCIENTIST), [r.run_id for r in runs])
    output.comparison_table(comparison)
    best = comparison.best[scientist.policy.gates.primary_metric]

    _step(f"5. propose the better run as {DATA_SCIENTIST}: the gates re-read its rows")
    proposal = propose(
        command(DATA_SCIENTIST), best, note="demo: the better of two tree depths on the same data"
    )
    output.gates_table(
        f"gates for version {proposal.version}", [g.to_json() for g in proposal.gates]
    )
    say(f"version {proposal.version} is {proposal.status}")
    if proposal.status != Status.PENDING:
        say("the gates refused this candidate: nothing to approve")
        return store_home

    _step(f"6. approve as {RELEASE_MANAGER} (four eyes)")
    t = approve(
        command(RELEASE_MANAGER),
        proposal.version,
        reason="demo: first release; passed every gate on its evaluation rows",
    )
    say(f"@champion is now version {t.champion} (previous: {t.previous or 'none'})")

    other = next(r.run_id for r in runs if r.run_id != best)
    _step("7. propose the other candidate: the gates re-score the champion on the same rows")
    second = propose(command(DATA_SCIENTIST), other, note="demo: the other candidate")
    output.gates_table(f"gates for version {second.version}", [g.to_json() for g in second.gates])
    say(f"version {second.version} is {second.status}")

    _step("8. predict current customers with @champion, streamed from DuckDB")
    p = predict(command(RELEASE_MANAGER), current, work / "predictions.parquet")
    say(f"scored {p.rows:,} customers with version {p.model_version} -> {p.output}")

    _step("9. status and history")
    output.status_table(status(command(RELEASE_MANAGER)))
    output.history_table([e.to_json() for e in history(command(RELEASE_MANAGER), 10)])
    say(
        f"next: MAGENTA_RELEASE_HOME={store_home} magenta-release ui to browse runs and "
        "versions; then train on your own table with `magenta-release train --data ...`"
    )
    return store_home


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
    run_action(False, lambda: run_demo(settings(None), rows, home))
