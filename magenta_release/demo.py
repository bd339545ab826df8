"""`demo`: the whole release loop on one store, printed as a person would see it."""

from __future__ import annotations

from pathlib import Path

from magenta_release.settings import Settings

DATA_SCIENTIST = "data-scientist"
RELEASE_MANAGER = "release-manager"


def _step(text: str) -> None:
    from magenta_release.output import console

    console().rule(f"[bold]{text}")


def write_customers(path: str | Path, seed: int, rows: int) -> Path:
    """Current customers to score: identifiers and features, no label. Stays outside MLflow."""
    from magenta_release.data import FEATURES, IDENTIFIERS, generate

    path = Path(path)
    table = generate(seed, rows).table
    path.parent.mkdir(parents=True, exist_ok=True)
    table.loc[:, [*IDENTIFIERS, *FEATURES]].to_parquet(path, index=False)
    return path


def run_demo(settings: Settings, rows: int = 50_000, out: Path = Path("out")) -> None:
    from magenta_release import output
    from magenta_release.compare import compare
    from magenta_release.init import init
    from magenta_release.predict import predict
    from magenta_release.release import PENDING, approve, history, propose, status
    from magenta_release.store import Store
    from magenta_release.train import train

    _step("1. init: the embedded store")
    result = init(settings)
    output.console().print(f"store {result.tracking_uri}, policy {result.policy_path}")
    store = Store.open(settings)

    _step(f"2. train two candidates ({rows:,} accounts, same seed, different depth)")
    runs = []
    for depth in (3, 5):
        with output.progress() as say:
            r = train(
                store,
                rows=rows,
                seed=42,
                params=[f"max_depth={depth}"],
                run_name=f"demo-depth{depth}",
                by=DATA_SCIENTIST,
                progress=say,
            )
        output.console().print(f"run {r.run_id}: roc_auc {r.metrics['roc_auc']:.4f}")
        runs.append(r)

    _step("3. compare")
    comparison = compare(store, [r.run_id for r in runs])
    output.comparison_table(comparison)
    best = comparison.best[store.policy.gates.primary_metric]

    _step(f"4. propose the better run as {DATA_SCIENTIST}")
    proposal = propose(
        store, best, by=DATA_SCIENTIST, note="demo: the better of two tree depths on the same data"
    )
    output.gates_table(
        f"gates for version {proposal.version}", [g.to_json() for g in proposal.gates]
    )
    output.console().print(f"version {proposal.version} is {proposal.status}")
    if proposal.status != PENDING:
        output.console().print("the gates refused this candidate: nothing to approve")
        return

    _step(f"5. approve as {RELEASE_MANAGER} (four eyes)")
    t = approve(
        store,
        proposal.version,
        reason="demo: beats the champion on the same rows",
        by=RELEASE_MANAGER,
    )
    output.console().print(f"@champion is now version {t.champion} (previous: {t.previous})")

    other = next(r.run_id for r in runs if r.run_id != best)
    _step("6. propose the other candidate: the gates re-score the champion on the same rows")
    second = propose(store, other, by=DATA_SCIENTIST, note="demo: the other candidate")
    output.gates_table(f"gates for version {second.version}", [g.to_json() for g in second.gates])
    output.console().print(f"version {second.version} is {second.status}")

    _step("7. predict current customers with @champion")
    customers = write_customers(out / "customers.parquet", seed=2024, rows=10_000)
    p = predict(store, customers, out / "predictions.parquet")
    output.console().print(
        f"scored {p.rows:,} customers with version {p.model_version} -> {p.output}"
    )

    _step("8. status and history")
    output.status_table(status(store))
    output.history_table([e.to_json() for e in history(store, 10)])
    output.console().print(
        "next: `magenta-release ui` to browse runs and versions, "
        "`magenta-release rollback --reason ...` to undo"
    )
