"""Plots a person can read at a glance: about 640 px wide (they were 320)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread

from tests.conftest import Trained


def test_training_plots_are_large_enough_to_read(trained: Trained, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{trained.cli.home / 'mlflow.db'}"
    run = trained.runs["good"]
    local = Path(MlflowClient(uri).download_artifacts(run, "plots", str(tmp_path)))
    for name in ("roc_curve.png", "pr_curve.png", "feature_importance.png"):
        height, width = imread(local / name).shape[:2]
        assert width >= 600 and height >= 500, (name, width, height)
