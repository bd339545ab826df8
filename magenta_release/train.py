"""`train`: generate data, fit, evaluate, and track everything in one MLflow run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np

from magenta_release import data as churn_data
from magenta_release import evaluate, faults, integrity
from magenta_release.errors import BadInput
from magenta_release.model import DEFAULT_PARAMS, SKOPS_TRUSTED_TYPES, build_pipeline, parse_params
from magenta_release.store import Store

TEST_SIZE = 0.2
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

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "metrics": self.metrics,
            "params": self.params,
            "dataset_digest": self.dataset_digest,
            "dataset": self.dataset_uri,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Split:
    x_train: Any
    x_eval: Any
    y_train: np.ndarray
    y_eval: np.ndarray
    eval_digest: str


def split(data: churn_data.ChurnData, seed: int) -> Split:
    """Stratified, seeded hold-out split; the evaluation rows are identified by a digest."""
    from sklearn.model_selection import train_test_split

    train_idx, eval_idx = train_test_split(
        np.arange(len(data.table)),
        test_size=TEST_SIZE,
        random_state=seed,
        stratify=data.label.to_numpy(),
    )
    features = data.features
    x_eval = features.iloc[eval_idx].reset_index(drop=True)
    y_eval = data.label.to_numpy()[eval_idx].astype(int)
    eval_frame = x_eval.assign(**{churn_data.LABEL: y_eval})
    return Split(
        features.iloc[train_idx].reset_index(drop=True),
        x_eval,
        data.label.to_numpy()[train_idx].astype(int),
        y_eval,
        churn_data.frame_digest(eval_frame),
    )


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


def pip_requirements() -> list[str]:
    """Exact versions of what loading the model needs: skips MLflow's 2.9 s inference.
    XGBoost is named by the distribution installed here (`xgboost-cpu` or `xgboost`)."""
    from importlib.metadata import packages_distributions

    xgboost = (packages_distributions().get("xgboost") or ["xgboost"])[0]
    names = ["mlflow", "scikit-learn", xgboost, "skops", "pandas", "numpy", "scipy"]
    return [f"{n}=={pkg_version(n)}" for n in names]


def model_signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = [
        ColSpec("double", c) for c in churn_data.NUMERIC_FEATURES
    ]
    columns += [ColSpec("string", c) for c in churn_data.CATEGORICAL_FEATURES]
    inputs = Schema(columns)
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def save_model(pipeline: Any, folder: Path) -> None:
    """skops, never pickle; explicit requirements; a signature but no example rows."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        pipeline,
        str(folder),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        signature=model_signature(),
        pip_requirements=pip_requirements(),
        pyfunc_predict_fn="predict_proba",
    )


def dataset_entity(data: churn_data.ChurnData, digest: str) -> Any:
    """A metadata-only MLflow dataset: source reference, digest and schema; never rows."""
    from mlflow.data.meta_dataset import MetaDataset

    from magenta_release.mlflow_data import SyntheticSource

    return MetaDataset(  # type: ignore[abstract]
        source=SyntheticSource(data.ref.uri),
        name="churn-accounts",
        digest=digest[:32],
        schema=model_signature().inputs,
    )


def train(
    store: Store,
    *,
    rows: int = 100_000,
    seed: int = 42,
    params: list[str] | None = None,
    run_name: str | None = None,
    by: str | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a candidate and track it. Validates everything before the first write."""
    say = progress or (lambda _msg: None)
    xgb_params = parse_params(params or [])
    churn_data.check_size(rows)
    if seed < 0:
        raise BadInput(f"--seed {seed} is negative; use a seed >= 0")
    if run_name is not None and (
        not run_name.strip() or len(run_name) > 200 or any(c in run_name for c in "/\\\0\n")
    ):
        raise BadInput(
            f"--run-name {run_name!r} is not allowed; use up to 200 characters "
            "without slashes or control characters"
        )
    store.check_residency()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    say(f"generating {rows:,} accounts (seed {seed})")
    dataset = churn_data.generate(seed, rows)
    dataset_sha = churn_data.frame_digest(dataset.table)
    parts = split(dataset, seed)
    lap("data")

    name = run_name or f"xgb-seed{seed}-{rows // 1000}k-{time.strftime('%Y%m%d-%H%M%S')}"
    tags = {
        "mlflow.source.git.commit": git_commit(),
        "mlflow.user": store.settings.actor(by),
        "magenta.generator_version": churn_data.GENERATOR_VERSION,
        "magenta.dataset_ref": dataset.ref.to_json(),
        "magenta.dataset_sha256": dataset_sha,
        "magenta.eval_sha256": parts.eval_digest,
        "magenta.split": json.dumps({"seed": seed, "test_size": TEST_SIZE}),
        # lets `status`/`gc` mark the run FAILED if this process is killed
        "magenta.host": socket.gethostname(),
        "magenta.pid": str(os.getpid()),
    }
    run_id = store.create_run(name, tags)
    faults.point("train.after_create_run")
    status = "FAILED"
    try:
        say("fitting preprocessing + XGBoost")
        pipeline = build_pipeline(xgb_params, seed)
        pipeline.fit(parts.x_train, parts.y_train)
        # The decision threshold is part of the fitted rule: chosen on training rows, never
        # on the evaluation rows.
        threshold = evaluate.choose_threshold(
            parts.y_train, pipeline.predict_proba(parts.x_train)[:, 1]
        )
        lap("fit")
        faults.point("train.after_fit")
        say("evaluating on the held-out rows")
        scores = pipeline.predict_proba(parts.x_eval)[:, 1]
        metrics = evaluate.metrics(parts.y_eval, scores, threshold)
        say("logging model, plots and dataset to MLflow")
        _log(
            store,
            run_id,
            pipeline,
            dataset,
            dataset_sha,
            parts,
            scores,
            metrics,
            {**DEFAULT_PARAMS, **xgb_params, "rows": rows, "seed": seed, "test_size": TEST_SIZE},
        )
        lap("tracking")
        status = "FINISHED"
    finally:
        # Any failure, Ctrl-C included, leaves the run FAILED, never RUNNING.
        store.end_run(run_id, status)
    return TrainResult(
        run_id,
        name,
        metrics,
        {**DEFAULT_PARAMS, **xgb_params},
        dataset_sha,
        dataset.ref.uri,
        seconds,
    )


def _log(
    store: Store,
    run_id: str,
    pipeline: Any,
    dataset: churn_data.ChurnData,
    dataset_sha: str,
    parts: Split,
    scores: np.ndarray,
    metrics: dict[str, float],
    params: dict[str, Any],
) -> None:
    from magenta_release.model import feature_importance

    with tempfile.TemporaryDirectory(prefix="magenta-train-") as tmp:
        folder = Path(tmp)
        model_dir = folder / "model"
        save_model(pipeline, model_dir)
        files = integrity.manifest(model_dir)
        plots = folder / "plots"
        plots.mkdir()
        roc_pr = evaluate.curves(parts.y_eval, scores)
        evaluate.write_plots(parts.y_eval, scores, feature_importance(pipeline), plots, roc_pr)
        evaluation = folder / "evaluation"
        evaluation.mkdir()
        (evaluation / "curves.json").write_text(json.dumps(roc_pr))
        (evaluation / "lift_by_decile.json").write_text(
            json.dumps(evaluate.lift_by_decile(parts.y_eval, scores))
        )
        (evaluation / "model_manifest.json").write_text(json.dumps(files, indent=1))
        store.log_run_data(
            run_id,
            params,
            metrics,
            {
                "magenta.model_manifest_sha256": integrity.manifest_digest(files),
                "magenta.model_format": "skops",
            },
        )
        store.log_artifacts(run_id, model_dir, "model")
        faults.point("train.after_model_upload")
        store.log_artifacts(run_id, plots, "plots")
        store.log_artifacts(run_id, evaluation, "evaluation")
    store.log_dataset(run_id, dataset_entity(dataset, dataset_sha), "training")
