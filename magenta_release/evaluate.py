"""Metrics and plots for a churn scorer (DESIGN.md §5). Pure functions of labels and scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# The metrics every report shows, in this order (one list for the CLI, reports, Dagster and
# benchmarks); HEADLINE_METRICS are the ones short summaries print.
REPORTED_METRICS = ("roc_auc", "pr_auc", "lift_at_10", "recall_at_10", "brier", "log_loss")
HEADLINE_METRICS = ("roc_auc", "pr_auc", "lift_at_10", "brier")
LOWER_IS_BETTER = frozenset({"brier", "log_loss"})


def top_fraction_mask(scores: np.ndarray, fraction: float = 0.10) -> np.ndarray:
    """The top `fraction` of rows by score (ties broken by position, deterministic)."""
    k = max(1, round(len(scores) * fraction))
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:k]] = True
    return mask


def choose_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold that maximises F1 on the given (training) rows."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, calibration and thresholded metrics."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(y, dtype=int)
    base = float(y.mean())
    top = top_fraction_mask(scores)
    predicted = scores >= threshold
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "lift_at_10": float(y[top].mean() / base) if base > 0 else 0.0,
        "recall_at_10": float(y[top].sum() / max(1, y.sum())),
        "brier": float(brier_score_loss(y, scores)),
        "log_loss": float(log_loss(y, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "threshold": float(threshold),
        "precision_at_threshold": float(precision_score(y, predicted, zero_division=0)),
        "recall_at_threshold": float(recall_score(y, predicted, zero_division=0)),
        "f1_at_threshold": float(f1_score(y, predicted, zero_division=0)),
        "base_rate": base,
        "eval_rows": float(len(y)),
    }


def curves(y: np.ndarray, scores: np.ndarray, points: int = 200) -> dict[str, Any]:
    """ROC and PR curves downsampled to about `points` points: aggregates, never rows."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    precision, recall, _ = precision_recall_curve(y, scores)

    def thin(a: np.ndarray, b: np.ndarray) -> tuple[list[float], list[float]]:
        idx = np.unique(np.linspace(0, len(a) - 1, min(points, len(a))).astype(int))
        return [round(float(v), 5) for v in a[idx]], [round(float(v), 5) for v in b[idx]]

    roc_x, roc_y = thin(fpr, tpr)
    pr_x, pr_y = thin(recall, precision)
    return {"roc": {"fpr": roc_x, "tpr": roc_y}, "pr": {"recall": pr_x, "precision": pr_y}}


def lift_by_decile(y: np.ndarray, scores: np.ndarray) -> list[float]:
    """Churn rate per score decile (highest first) divided by the base rate."""
    order = np.argsort(-scores, kind="stable")
    base = max(float(np.mean(y)), 1e-12)
    return [float(np.mean(y[part]) / base) for part in np.array_split(order, 10)]


def write_plots(
    y: np.ndarray,
    scores: np.ndarray,
    importance: dict[str, float],
    folder: Path,
    roc_pr: dict[str, Any] | None = None,
    label: str = "",
) -> list[Path]:
    """ROC, PR, calibration, lift-by-decile and feature-importance PNGs into `folder`, each
    titled with `label` (the run) so a plot found on its own still says what it shows.

    Matplotlib's object API with fixed margins: no pyplot state, no tight_layout pass (which
    took a third of the plotting time in profiles)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    c = roc_pr or curves(y, scores)
    suffix = f" — {label}" if label else ""
    paths: list[Path] = []

    def figure(left: float = 0.14, size: tuple[float, float] = (6.4, 5.2)) -> tuple[Any, Any]:
        # ~640 px wide at 100 dpi: legible at a glance in the MLflow UI and in the deck
        fig = Figure(figsize=size, dpi=100)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=left, bottom=0.13, right=0.96, top=0.9)
        return fig, fig.add_subplot()

    def save(fig: Any, name: str) -> None:
        path = folder / name
        fig.savefig(path)
        paths.append(path)

    fig, ax = figure()
    ax.plot(c["roc"]["fpr"], c["roc"]["tpr"])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC" + suffix)
    save(fig, "roc_curve.png")

    fig, ax = figure()
    ax.plot(c["pr"]["recall"], c["pr"]["precision"])
    ax.axhline(float(np.mean(y)), linestyle="--", color="grey")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall" + suffix)
    save(fig, "pr_curve.png")

    fig, ax = figure()
    frac_pos, mean_pred = calibration_curve(y, scores, n_bins=10, strategy="quantile")
    ax.plot(mean_pred, frac_pos, marker="o")
    top = max(float(mean_pred.max()), float(frac_pos.max()), 0.01)
    ax.plot([0, top], [0, top], linestyle="--", color="grey")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title="Calibration" + suffix,
    )
    save(fig, "calibration_curve.png")

    fig, ax = figure()
    ax.bar(range(1, 11), lift_by_decile(y, scores))
    ax.axhline(1.0, linestyle="--", color="grey")
    ax.set(xlabel="score decile (1 = highest)", ylabel="lift", title="Lift by decile" + suffix)
    save(fig, "lift_by_decile.png")

    fig, ax = figure(left=0.42, size=(9, 6.5))
    top_features = sorted(importance.items(), key=lambda kv: kv[1])[-15:]
    ax.barh([k for k, _ in top_features], [v for _, v in top_features])
    ax.tick_params(axis="y", labelsize=10)
    ax.set(xlabel="importance (gain share)", title="Feature importance" + suffix)
    save(fig, "feature_importance.png")
    return paths
