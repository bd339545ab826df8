"""Drift and decay statistics for champion health, as pure functions of rows, scores and
binned summaries: the training-time summary of a model's inputs and scores (quantile edges
rounded to 4 significant digits, and counts; never rows), the population stability index (PSI)
of new rows against it, and a metric with its bootstrap confidence interval.

PSI = sum over bins of (actual% - expected%) x ln(actual% / expected%), with empty bins
floored at 0.01 % (Yurdakul, "Statistical Properties of Population Stability Index", 2018,
https://scholarworks.wmich.edu/dissertations/3208/), which gives the traditional reading:
< 0.10 little or no change, 0.10-0.25 an intermediate shift, > 0.25 a significant shift that
needs action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_PATH = "evaluation/training_bins.json"  # on the training run, beside the curves
SUMMARY_FORMAT = 1
SCORE = "score"  # the champion's score, as named in PSI results
EPSILON = 1e-4  # an empty bin counts as 0.01 %: PSI stays finite
MIN_CATEGORY_ROWS = 10  # rarer categories are summarised as "other": no near-unique values
MAX_CATEGORIES = 30
EDGE_DIGITS = 4  # significant digits of a bin edge
TRAINING_BASELINE = "training-time binned summary (evaluation/training_bins.json)"


def summarise_column(values: Any, kind: str, bins: int) -> dict[str, Any]:
    """One column's binned summary: quantile edges and counts for numbers, counts of frequent
    values for categories; missing values counted apart. Aggregates only, never rows."""
    import pandas as pd

    series = pd.Series(values)
    missing = int(series.isna().sum())
    present = series.dropna()
    if kind == "categorical":
        counts = present.astype(str).value_counts()
        kept = counts[counts >= MIN_CATEGORY_ROWS].head(MAX_CATEGORIES)
        return {
            "kind": "categorical",
            "categories": [str(c) for c in kept.index],
            "counts": [int(c) for c in kept.to_numpy()],
            "other": int(counts.sum() - kept.sum()),
            "missing": missing,
        }
    numbers = present.astype("float64").to_numpy()
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    # A quantile of a continuous column is one row's exact value: rounded, it is not.
    found = np.quantile(numbers, qs) if len(numbers) else np.array([])
    edges = np.unique(np.array([_rounded(q) for q in found], dtype=float))
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in _numeric_counts(numbers, edges)],
        "missing": missing,
    }


def _rounded(value: float) -> float:
    return float(f"{value:.{EDGE_DIGITS}g}")


def _numeric_counts(numbers: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # bin i holds (edges[i-1], edges[i]]; the first and last bins are open-ended
    index = np.searchsorted(edges, numbers, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def counts_like(summary: dict[str, Any], values: Any) -> tuple[list[int], list[int]]:
    """(expected, actual) counts of `values` in the bins of `summary`, missing and other
    included as their own bins."""
    import pandas as pd

    series = pd.Series(values)
    missing = int(series.isna().sum())
    present = series.dropna()
    if summary["kind"] == "categorical":
        found = present.astype(str).value_counts()
        actual = [int(found.get(c, 0)) for c in summary["categories"]]
        other = int(len(present) - sum(actual))
        return (
            [*summary["counts"], summary["other"], summary["missing"]],
            [*actual, other, missing],
        )
    edges = np.asarray(summary["edges"], dtype=float)
    actual_bins = _numeric_counts(present.astype("float64").to_numpy(), edges)
    return (
        [*summary["counts"], summary["missing"]],
        [*(int(c) for c in actual_bins), missing],
    )


def psi(expected: list[int] | np.ndarray, actual: list[int] | np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    pe = np.maximum(e / e.sum(), EPSILON)
    pa = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def training_summary(
    frame: pd.DataFrame, scores: np.ndarray, categorical: list[str], bins: int = 10
) -> dict[str, Any]:
    """The summary of a model's training rows (its inputs as fitted, and its scores)."""
    cat = set(categorical)
    return {
        "format": SUMMARY_FORMAT,
        "rows": len(frame),
        "bins": bins,
        "columns": {
            str(c): summarise_column(frame[c], "categorical" if c in cat else "numeric", bins)
            for c in frame.columns
        },
        SCORE: summarise_column(scores, "numeric", bins),
    }


def psi_by_column(
    summary: dict[str, Any], frame: pd.DataFrame, scores: np.ndarray
) -> dict[str, float]:
    """PSI of the score and of every summarised column present in `frame`."""
    out = {SCORE: psi(*counts_like(summary[SCORE], scores))}
    for name, column in summary["columns"].items():
        if name in frame.columns:
            out[name] = psi(*counts_like(column, frame[name]))
    return out


# ---- the metric with a bootstrap CI (pure) -------------------------------------------------
def metric_ci(
    y: np.ndarray, scores: np.ndarray, metric: str, threshold: float, rounds: int, confidence: float
) -> tuple[float, float, float]:
    """(value, CI low, CI high) of one metric on these rows; the CI from `rounds` bootstrap
    resamples (NaN when rounds is 0)."""
    from magenta_release.core.gates import bootstrap_intervals
    from magenta_release.core.metrics import REPORTED_METRICS
    from magenta_release.core.metrics import metrics as compute

    value = compute(y, scores, threshold)[metric]
    if rounds <= 0:
        return value, float("nan"), float("nan")
    if metric in REPORTED_METRICS:  # the card's O(n)-per-round bootstrap, of this metric only
        nan = (float("nan"), float("nan"))
        only = bootstrap_intervals(y, scores, rounds, confidence, metrics=(metric,))
        low, high = only.get(metric, nan)
        return value, low, high
    rng = np.random.default_rng(0)
    n = len(y)
    found: list[float] = []
    for _ in range(rounds):  # any other metric: recomputed on each resample
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        v = compute(y[idx], scores[idx], threshold)[metric]
        if np.isfinite(v):
            found.append(v)
    if not found:
        return value, float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(found, [tail, 100 - tail])
    return value, float(low), float(high)


@dataclass(frozen=True)
class MetricCheck:
    name: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    at_release: float | None
    floor: float | None  # the worst acceptable value (a ceiling for lower-is-better metrics)
    lower_is_better: bool
    breached: bool


def shadow_difference(
    champion: np.ndarray, challenger: np.ndarray, fraction: float
) -> dict[str, float]:
    """How the challenger would have changed live use: of the top `fraction` to call, how
    many change, and the mean absolute score difference (same rows, same order)."""
    from magenta_release.core.metrics import top_fraction_mask

    a, b = top_fraction_mask(champion, fraction), top_fraction_mask(challenger, fraction)
    k = int(a.sum())
    return {
        "campaign_size": float(k),
        "campaign_changed": float(k - int((a & b).sum())),
        "mean_abs_score_diff": float(np.mean(np.abs(champion - challenger))),
    }
