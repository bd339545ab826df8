"""`train`: read a table through the data contract, fit, evaluate, and track everything in one
MLflow run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magenta_release.app.context import Context
from magenta_release.core import faults, integrity, keys
from magenta_release.core import metrics as evaluate
from magenta_release.core.contract import Columns
from magenta_release.core.drift import SUMMARY_PATH, training_summary
from magenta_release.core.errors import BadInput
from magenta_release.core.pipeline import DEFAULT_PARAMS, build_pipeline, parse_params
from magenta_release.io import datasets as dataset
from magenta_release.io import plots as plotting
from magenta_release.io import sources
from magenta_release.io.model_logging import dataset_entity, save_model
from magenta_release.io.store import Runs

DEFAULT_ROWS = 100_000
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_name: str
    metrics: dict[str, float]
    params: dict[str, Any]
    dataset_digest: str
    dataset_uri: str
    seconds: dict[str, float]
    notices: tuple[str, ...] = ()  # what the contract left out of the features, and why

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "metrics": self.metrics,
            "params": self.params,
            "dataset_digest": self.dataset_digest,
            "dataset": self.dataset_uri,
            "seconds": self.seconds,
            "notices": list(self.notices),
        }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def train(
    ctx: Context,
    *,
    data: str | None = None,
    rows: int | None = None,
    seed: int = 42,
    params: list[str] | None = None,
    run_name: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a candidate on a table (`data`, a source URI; default: the built-in generator
    with `rows` and `seed`) and track it. Everything is validated before the first write."""
    say = progress or (lambda _msg: None)
    xgb_params = parse_params(params or [])
    if seed < 0:
        raise BadInput(f"--seed {seed} is negative; use a seed >= 0")
    if data is not None and rows is not None:
        raise BadInput("--rows only applies to the built-in generator; leave it out with --data")
    # `--rows 0` is refused by the generator, not replaced by the default
    generated = DEFAULT_ROWS if rows is None else rows
    uri = data if data is not None else dataset.generator_uri(seed, generated)
    _check_run_name(run_name)
    ctx.check_residency()
    contract = ctx.policy.data
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    say(f"reading {uri}")
    sources.require_protocol(uri, ctx.policy.residency.allowed_source_protocols, "--data")
    table = dataset.load(uri, contract)
    for notice in table.columns.notices:
        say(notice)
    parts = dataset.split(table, contract)
    ev = dataset.evidence(table, parts, contract)
    lap("data")

    name = run_name or f"xgb-seed{seed}-{table.rows // 1000}k-{time.strftime('%Y%m%d-%H%M%S')}"
    tags = {
        "mlflow.source.git.commit": git_commit(),
        "mlflow.user": ctx.actor,
        **ev.to_tags(),
        # lets `repair` mark the run FAILED if this process is killed
        keys.RUN_HOST: socket.gethostname(),
        keys.RUN_PID: str(os.getpid()),
    }
    runs = ctx.runs
    run_id = runs.create_run(name, tags)
    faults.point("train.after_create_run")
    status = "FAILED"
    try:
        say(f"fitting preprocessing + XGBoost on {len(parts.y_train):,} rows")
        pipeline = build_pipeline(
            xgb_params, seed, table.columns.numeric, table.columns.categorical
        )
        pipeline.fit(parts.x_train, parts.y_train)
        # The decision threshold is part of the fitted rule: chosen on training rows, never
        # on the evaluation rows.
        train_scores = pipeline.predict_proba(parts.x_train)[:, 1]
        threshold = evaluate.choose_threshold(parts.y_train, train_scores)
        lap("fit")
        faults.point("train.after_fit")
        say(f"evaluating on {len(parts.y_eval):,} held-out rows")
        scores = pipeline.predict_proba(parts.x_eval)[:, 1]
        metrics = evaluate.metrics(parts.y_eval, scores, threshold)
        say("logging model, plots and dataset to MLflow")
        _log(
            runs,
            run_id,
            pipeline,
            ev,
            table.columns,
            parts,
            scores,
            metrics,
            {
                **DEFAULT_PARAMS,
                **xgb_params,
                "rows": table.rows,
                "seed": seed,
                "evaluation_fraction": contract.evaluation_fraction,
            },
            run_name=name,
            bins=training_summary(
                parts.x_train, train_scores, table.columns.categorical, ctx.policy.health.bins
            ),
        )
        lap("tracking")
        status = "FINISHED"
    finally:
        # Any failure, Ctrl-C included, leaves the run FAILED, never RUNNING.
        runs.end_run(run_id, status)
    return TrainResult(
        run_id,
        name,
        metrics,
        {**DEFAULT_PARAMS, **xgb_params},
        ev.digest,
        ev.source,
        seconds,
        table.columns.notices,
    )


def _check_run_name(run_name: str | None) -> None:
    if run_name is not None and (
        not run_name.strip() or len(run_name) > 200 or any(c in run_name for c in "/\\\0\n")
    ):
        raise BadInput(
            f"--run-name {run_name!r} is not allowed; use up to 200 characters "
            "without slashes or control characters"
        )


def _log(
    runs: Runs,
    run_id: str,
    pipeline: Any,
    ev: dataset.Evidence,
    cols: Columns,
    parts: dataset.Split,
    scores: np.ndarray,
    metrics: dict[str, float],
    params: dict[str, Any],
    run_name: str = "",
    bins: dict[str, Any] | None = None,
) -> None:
    from magenta_release.core.pipeline import feature_importance

    with tempfile.TemporaryDirectory(prefix="magenta-train-") as tmp:
        folder = Path(tmp)
        model_dir = folder / "model"
        save_model(pipeline, model_dir, cols)
        files = integrity.manifest(model_dir)
        plots = folder / "plots"
        plots.mkdir()
        roc_pr = evaluate.curves(parts.y_eval, scores)
        plotting.write_plots(
            parts.y_eval, scores, feature_importance(pipeline), plots, roc_pr, label=run_name
        )
        evaluation = folder / "evaluation"
        evaluation.mkdir()
        (evaluation / "curves.json").write_text(json.dumps(roc_pr))
        (evaluation / "lift_by_decile.json").write_text(
            json.dumps(evaluate.lift_by_decile(parts.y_eval, scores))
        )
        (evaluation / "model_manifest.json").write_text(json.dumps(files, indent=1))
        if bins is not None:  # champion health's PSI baseline: bin edges and counts, no rows
            (evaluation / Path(SUMMARY_PATH).name).write_text(json.dumps(bins))
        runs.log_run_data(
            run_id,
            params,
            metrics,
            {
                keys.RUN_MODEL_MANIFEST_SHA256: integrity.manifest_digest(files),
                keys.RUN_MODEL_FORMAT: "skops",
            },
        )
        runs.log_artifacts(run_id, model_dir, "model")
        faults.point("train.after_model_upload")
        runs.log_artifacts(run_id, plots, "plots")
        runs.log_artifacts(run_id, evaluation, "evaluation")
    runs.log_dataset(run_id, dataset_entity(ev, cols), "training")
