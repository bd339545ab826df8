"""Metrics for a churn scorer (docs/release-process.md). Pure functions of labels and scores."""

from __future__ import annotations

from typing import Any

import numpy as np

# The metrics every report shows, in this order (one list for the CLI, reports, Dagster and
# benchmarks); HEADLINE_METRICS are the ones short summaries print.
REPORTED_METRICS = ("roc_auc", "pr_auc", "lift_at_10", "recall_at_10", "brier", "log_loss")
HEADLINE_METRICS = ("roc_auc", "pr_auc", "lift_at_10", "brier")
LOWER_IS_BETTER = frozenset({"brier", "log_loss"})
# The decision threshold of a run that logged none (a team's own run): the one place it is
# spelled. Every run's thresholded metrics use its own `threshold` metric (train chooses it on
# training rows), the champion's included, so what the gates compare is what each reports.
DEFAULT_THRESHOLD = 0.5
# Metrics a ceiling may be set for relative to a constant predictor (`[gates.max_relative]`).
RELATIVE_METRICS = ("brier", "log_loss")


def constant_baseline(metric: str, base_rate: float) -> float:
    """What predicting the base rate p for every row scores: Brier p(1-p), log loss the
    entropy -(p ln p + (1-p) ln(1-p)). The yardstick of a relative ceiling."""
    import math

    p = min(max(base_rate, 1e-7), 1 - 1e-7)
    if metric == "brier":
        return p * (1 - p)
    if metric == "log_loss":
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))
    raise ValueError(f"no constant baseline for {metric}")


def canonical_metrics(logged: dict[str, float], names: dict[str, str]) -> dict[str, float]:
    """A run's logged metrics under the names the gates use: `names` maps a team's own names
    (`roc_auc_score`) to ours (`roc_auc`); a metric logged under our name wins over a
    mapped one."""
    mapped = {names[k]: v for k, v in logged.items() if k in names}
    return {**mapped, **{k: v for k, v in logged.items() if k not in names}}


def threshold_of(run_metrics: dict[str, float]) -> float:
    """The decision threshold a run recorded, else DEFAULT_THRESHOLD."""
    return float(run_metrics.get("threshold", DEFAULT_THRESHOLD))


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
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else DEFAULT_THRESHOLD


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
