"""`make bench`: every benchmark side by side with its baseline in one run; medians, ratios,
targets; rewrites docs/performance.md. `--smoke` runs each once on tiny sizes (used by tests).

Timings are wall-clock medians on a shared machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from magenta_release.telemetry import disable_telemetry

ROOT = Path(__file__).resolve().parent.parent
disable_telemetry()


@dataclass
class Row:
    name: str
    baseline: str
    base_s: float
    ours: str
    ours_s: float
    ratio: float
    target: str
    met: bool
    note: str = ""


@dataclass
class Sizes:
    reps: int
    rows: int
    runs: int
    versions: int
    filler_runs: int


FULL = Sizes(reps=5, rows=100_000, runs=10_000, versions=50, filler_runs=1_000)
SMOKE = Sizes(reps=1, rows=2_000, runs=300, versions=3, filler_runs=50)


def median_time(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _settings(home: Path) -> Any:
    from magenta_release.settings import Settings

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return Settings(home=home)


def bench_startup(s: Sizes, tmp: Path) -> list[Row]:
    cli = [str(Path(sys.executable).parent / "magenta-release"), "--help"]
    mlflow = [sys.executable, "-c", "import mlflow"]

    def run(cmd: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(cmd, check=True, capture_output=True)

    run(cli)()  # warm the OS file cache for both
    run(mlflow)()
    ours, base = median_time(run(cli), s.reps), median_time(run(mlflow), s.reps)
    return [
        Row(
            "CLI start-up",
            "python -c 'import mlflow'",
            base,
            "magenta-release --help",
            ours,
            ours / base,
            "≤ 0.15",
            ours / base <= 0.15,
            "mlflow, pandas, sklearn and pydantic are imported lazily",
        )
    ]


def bench_init(s: Sizes, tmp: Path) -> list[Row]:
    from magenta_release.init import init
    from magenta_release.store import build_template_db

    init(_settings(tmp / "warm"))  # imports, so both sides start warm
    build_template_db(tmp / "warm-base.db")
    counter = iter(range(1000))

    def ours() -> None:
        init(_settings(tmp / f"init-{next(counter)}"))

    def base() -> None:
        build_template_db(tmp / f"base-{next(counter)}.db")

    o, b = median_time(ours, s.reps), median_time(base, s.reps)
    return [
        Row(
            "init (fresh store)",
            "MLflow first-use schema migration (SQLite)",
            b,
            "magenta-release init (migrated template copy + experiment)",
            o,
            o / b,
            "≤ 0.5",
            o / b <= 0.5,
        )
    ]


def _baseline_train(tmp: Path, rows: int, seed: int) -> None:
    """The same data and model with MLflow's defaults: fluent run, log_model with pip
    requirement inference and an input example, mlflow.models.evaluate."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from magenta_release import data as churn_data
    from magenta_release import dataset
    from magenta_release.contract import DataContract
    from magenta_release.model import SKOPS_TRUSTED_TYPES, build_pipeline

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'baseline.db'}")
    mlflow.set_experiment("baseline")
    contract = DataContract()
    table = dataset.load(dataset.generator_uri(seed, rows), contract)
    parts = dataset.split(table, contract)
    pipeline = build_pipeline({}, seed, table.columns.numeric, table.columns.categorical)
    with mlflow.start_run():
        mlflow.log_params({"rows": rows, "seed": seed})
        pipeline.fit(parts.x_train, parts.y_train)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            signature=infer_signature(
                parts.x_train.head(100), pipeline.predict_proba(parts.x_train.head(100))
            ),
            input_example=parts.x_train.head(5),
        )
        frame = parts.x_eval.astype({c: object for c in churn_data.CATEGORICAL_FEATURES})
        mlflow.models.evaluate(  # type: ignore[no-untyped-call]
            info.model_uri,
            frame.assign(label=parts.y_eval),
            targets="label",
            model_type="classifier",
            evaluator_config={"log_model_explainability": False},
        )
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None restores the default


def bench_train(s: Sizes, tmp: Path) -> list[Row]:
    from magenta_release.init import init
    from magenta_release.store import Store
    from magenta_release.train import train

    settings = _settings(tmp / "train")
    init(settings)
    store = Store.open(settings)
    train(store, rows=2000, seed=1)  # warm imports and matplotlib's font cache
    _baseline_train(tmp, 2000, 1)
    splits: list[dict[str, float]] = []

    def ours() -> None:
        splits.append(train(store, rows=s.rows, seed=7).seconds)

    o = median_time(ours, s.reps)
    b = median_time(lambda: _baseline_train(tmp, s.rows, 7), max(1, s.reps - 2))
    share = statistics.median(x["tracking"] / sum(x.values()) for x in splits)
    return [
        Row(
            f"train end to end, {s.rows:,} accounts",
            "same data + model, MLflow defaults "
            "(log_model with pip inference + input example, mlflow.models.evaluate)",
            b,
            "magenta-release train (model, plots, curves, dataset, manifest)",
            o,
            o / b,
            "≤ 0.6",
            o / b <= 0.6,
            "in-process, imports warm on both sides",
        ),
        Row(
            "tracking overhead share of train",
            "—",
            0.0,
            "evaluation + plots + logging / train wall",
            statistics.median(x["tracking"] for x in splits),
            share,
            "≤ 0.25",
            share <= 0.25,
            f"data {statistics.median(x['data'] for x in splits):.2f} s, fit "
            f"{statistics.median(x['fit'] for x in splits):.2f} s",
        ),
    ]


def bench_datagen(s: Sizes, tmp: Path) -> list[Row]:
    from benchmarks.loop_generator import generate_rows
    from magenta_release import data

    data.generate(1, 1000)
    o = median_time(lambda: data.generate_tables(42, s.rows), s.reps)
    full = median_time(lambda: data.generate(42, s.rows), s.reps)
    b = median_time(lambda: generate_rows(42, s.rows), 1)
    return [
        Row(
            f"data generation, {s.rows:,} accounts",
            "per-row loop with numpy scalar draws, same distributions (raw tables)",
            b,
            "vectorised (raw tables + label)",
            o,
            b / o,
            "≥ 20x faster",
            b / o >= 20,
            f"ratio = baseline / ours; with the joined feature table too: {full:.3f} s "
            f"({b / full:.0f}x)",
        )
    ]


def bench_compare(s: Sizes, tmp: Path) -> list[Row]:
    from mlflow import MlflowClient

    from benchmarks.fixtures import bulk_runs
    from magenta_release.compare import compare
    from magenta_release.init import init
    from magenta_release.store import Store

    settings = _settings(tmp / "compare")
    init(settings)
    store = Store.open(settings)
    bulk_runs(settings.db_path, store.experiment_id(), s.runs)
    client = MlflowClient(store.tracking_uri)
    exp = store.experiment_id()

    def base() -> Any:
        return client.search_runs([exp], order_by=["metrics.roc_auc DESC"], max_results=10)

    def ours() -> Any:
        return compare(store, top=10, metric="roc_auc")

    assert [r.info.run_id for r in base()] == [r.run_id for r in ours().runs]
    o, b = median_time(ours, s.reps), median_time(base, s.reps)
    return [
        Row(
            f"compare top 10 of {s.runs:,} runs by a metric",
            "MlflowClient.search_runs(order_by=[metric DESC])",
            b,
            "magenta-release compare --top 10",
            o,
            o / b,
            "≤ 0.1 and < 0.3 s",
            o / b <= 0.1 and o < 0.3,
            "same 10 runs, same order (asserted)",
        )
    ]


def _released_store(tmp: Path, rows: int) -> Any:
    from magenta_release.init import init
    from magenta_release.release import approve, propose
    from magenta_release.store import Store
    from magenta_release.train import train

    settings = _settings(tmp)
    init(settings)
    policy = settings.policy_path()
    policy.write_text(
        policy.read_text()
        .replace('approvers = ["release-manager"]', 'approvers = ["release-manager", "bench"]')
        # smoke runs train on a few thousand rows: a floor for that size, not production's
        .replace("roc_auc = 0.70", "roc_auc = 0.60")
    )
    store = Store.open(settings)
    run = train(store, rows=rows, seed=7).run_id
    version = propose(store, run, by="data-scientist").version
    approve(store, version, reason="bench", by="release-manager")
    return store, run


def bench_predict(s: Sizes, tmp: Path) -> list[Row]:
    import mlflow.sklearn

    from magenta_release import data
    from magenta_release.predict import predict_frame

    store, run = _released_store(tmp / "predict", s.rows)
    frame = data.generate(2024, s.rows).table.loc[:, [*data.IDENTIFIERS, *data.FEATURES]]
    pipeline = mlflow.sklearn.load_model(store.download(run, "model", tmp / "raw"))
    features = frame.loc[:, list(data.FEATURES)]
    predict_frame(store, frame.head(100))
    raw = median_time(lambda: pipeline.predict_proba(features), s.reps)
    ours = median_time(lambda: predict_frame(store, frame), s.reps)
    return [
        Row(
            f"predict {s.rows:,} rows",
            "in-memory pipeline.predict_proba",
            raw,
            "verified @champion: download, SHA-256, load, schema check, score",
            ours,
            raw / ours,
            "throughput ≥ 0.7 of raw",
            raw / ours >= 0.7,
            f"{s.rows / ours:,.0f} rows/s vs {s.rows / raw:,.0f} rows/s raw",
        )
    ]


def bench_release(s: Sizes, tmp: Path) -> list[Row]:
    from benchmarks.fixtures import bulk_runs, clone_run
    from magenta_release.release import approve, propose

    store, run = _released_store(tmp / "release", max(2000, s.rows // 5))
    db = store.settings.db_path
    bulk_runs(db, store.experiment_id(), s.filler_runs)
    for _ in range(s.versions - 1):  # pending proposals, like a busy registry
        propose(store, clone_run(db, run), by="data-scientist")
    props, approves = [], []
    for _ in range(max(2, s.reps // 2)):
        clone = clone_run(db, run)
        start = time.perf_counter()
        version = propose(store, clone, by="data-scientist").version
        props.append(time.perf_counter() - start)
        start = time.perf_counter()
        approve(store, version, reason="bench", by="release-manager")
        approves.append(time.perf_counter() - start)
    label = f"{s.filler_runs:,} runs, {len(store.versions())} versions"
    return [
        Row(
            f"propose latency ({label})",
            "—",
            0.0,
            "propose (gates re-score the champion)",
            statistics.median(props),
            0.0,
            "report",
            True,
            "no target: measured",
        ),
        Row(
            f"approve latency ({label})",
            "—",
            0.0,
            "approve (lock, SHA-256, audit, aliases)",
            statistics.median(approves),
            0.0,
            "report",
            True,
            "no target: measured",
        ),
    ]


BENCHMARKS = [
    bench_startup,
    bench_init,
    bench_train,
    bench_datagen,
    bench_compare,
    bench_predict,
    bench_release,
]

PROFILE_NOTES = """\
## What the profiles showed

- **CLI start-up** was 0.47 s (ratio 0.19) while `cli.py` imported the pydantic settings
  module for the telemetry switches: `python -X importtime` put 196 ms on
  `pydantic_settings`. The switches now live in `magenta_release/telemetry.py` and settings
  are imported when a command runs: `--help` takes ~0.24 s.
- **Training tracking overhead** was 42 % of the 100k-account train: cProfile put 0.48 s of
  0.74 s in matplotlib, a third of it in `tight_layout`. Plots now use matplotlib's object API
  with fixed margins (no pyplot state, no layout pass). The decision threshold, chosen on the
  training rows' scores (0.1 s of `predict_proba` on 80k rows), is now timed as part of the fit
  it belongs to. Rendering the plots in a thread while the model is serialised gained nothing
  (both hold the GIL) and was not kept. MLflow's pip-requirement inference (a subprocess,
  ~2.9 s) and input-example handling are what the baseline pays and we skip.
- **Predict** reached 0.65 of raw throughput through `mlflow.pyfunc`: its load parsed MLmodel
  three times and its schema enforcement re-converted every column. It now loads the verified
  `model.skops` with skops' trusted types and checks the schema itself (one pass): 0.74 to 0.76.
- **Compare**: MLflow's `search_runs(order_by=[metric])` joins the metrics table without an
  index; `compare --top` fetches the newest runs, takes their k-th best value as a bar and
  filters on it (`metrics.x >= bar`), raising the bar until a page is not full, then sorts in
  memory; it uses only the public client API, so it works the same against a server.
- **Server mode** (not in this table; see tests/integration): basic-auth re-hashes the password
  with PBKDF2 on every request; with `auth_cache_ttl_seconds = 60` the release loop over HTTP
  went from 80 s to 10 s.
"""


def write_report(rows: list[Row], path: Path, seconds: float) -> None:
    versions = ", ".join(
        f"{p} {version(p)}"
        for p in ("mlflow", "scikit-learn", "xgboost-cpu", "pandas", "numpy", "dagster")
    )
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`benchmarks/run.py`); do not edit by hand. Each row runs its",
        "baseline and ours in the same process run, medians of repeated runs; ratios are what",
        "to read (the machine is shared and noisy).",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        f"- versions: {versions}",
        f"- whole benchmark run: {seconds:.0f} s",
        "",
        "| benchmark | baseline | baseline s | ours | ours s | ratio | target | met |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        base = f"{r.base_s:.3f}" if r.base_s else "—"
        ratio = f"{r.ratio:.3f}" if r.ratio else "—"
        lines.append(
            f"| {r.name} | {r.baseline} | {base} | {r.ours} | {r.ours_s:.3f} | "
            f"{ratio} | {r.target} | {'yes' if r.met else '**no**'} |"
        )
    lines += ["", "Notes:", ""]
    lines += [f"- {r.name}: {r.note}" for r in rows if r.note]
    lines += ["", PROFILE_NOTES]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--only", help="run only benchmarks whose name contains this")
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL
    rows: list[Row] = []
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="magenta-bench-"))
    try:
        for bench in BENCHMARKS:
            if args.only and args.only not in bench.__name__:
                continue
            t = time.perf_counter()
            found = bench(sizes, tmp / bench.__name__)
            rows += found
            for r in found:
                print(
                    f"{r.name}: ours {r.ours_s:.3f} s, baseline {r.base_s:.3f} s, ratio "
                    f"{r.ratio:.3f} ({r.target}: {'met' if r.met else 'MISSED'})",
                    file=sys.stderr,
                )
            print(f"  [{bench.__name__} took {time.perf_counter() - t:.0f} s]", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(rows, args.output, time.perf_counter() - start)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
