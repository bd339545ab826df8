"""The regression gate's statistics: the weighted ROC-AUC against scikit-learn, and the paired
bootstrap on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from magenta_release.core.gates import auc_ranks, paired_bootstrap, weighted_auc

# The ROC-AUC path is O(n) per round; the others call scikit-learn's metrics (~20 ms a round).
ROUNDS = {"roc_auc": 200, "pr_auc": 20, "brier": 20}


def _weighted(y: np.ndarray, scores: np.ndarray, w: np.ndarray) -> float:
    return weighted_auc(y, w, *auc_ranks(scores))


@pytest.mark.parametrize("seed", range(20))
def test_weighted_auc_equals_sklearn_with_ties_and_bootstrap_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = (rng.random(n) < rng.uniform(0.05, 0.5)).astype(int)
    y[:2] = [0, 1]  # both classes present
    # few distinct values: many ties, inside and across the classes
    scores = rng.integers(0, int(rng.integers(2, 12)), n) / 10 + 0.3 * y * rng.random(n).round(1)
    counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)  # with zeros
    counts[:2] = np.maximum(counts[:2], 1)
    expected = roc_auc_score(y, scores, sample_weight=counts)
    assert _weighted(y, scores, counts) == pytest.approx(expected, abs=1e-12)


def test_weighted_auc_with_real_valued_weights_equals_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + y, 1)
    w = rng.exponential(size=500)
    assert _weighted(y, scores, w) == pytest.approx(
        roc_auc_score(y, scores, sample_weight=w), abs=1e-12
    )


def test_weighted_auc_known_values() -> None:
    y = np.array([0, 0, 1, 1])
    ones = np.ones(4)
    assert _weighted(y, np.array([0.1, 0.2, 0.3, 0.4]), ones) == 1.0
    assert _weighted(y, np.array([0.4, 0.3, 0.2, 0.1]), ones) == 0.0
    assert _weighted(y, np.array([0.5, 0.5, 0.5, 0.5]), ones) == 0.5  # all tied: half
    # weight 3 on the one misranked negative: (1*1 + 1*1 + 0*3 ... ) / (2 * 4)
    y, s = np.array([0, 0, 1, 1]), np.array([0.1, 0.9, 0.5, 0.6])
    assert _weighted(y, s, np.array([1.0, 3.0, 1.0, 1.0])) == pytest.approx(2 / 8)


def test_weighted_auc_without_one_class_is_nan() -> None:
    y = np.array([0, 1, 0, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    assert np.isnan(_weighted(y, scores, np.array([1.0, 0.0, 2.0, 0.0])))


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "brier"])
def test_bootstrap_of_identical_scores_is_exactly_zero(metric: str) -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(int)
    s = rng.random(300)
    assert paired_bootstrap(y, s, s.copy(), metric, ROUNDS[metric], 0.95, seed=1) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "brier"])
def test_bootstrap_of_perfect_against_random_is_far_above_zero(metric: str) -> None:
    """Positive means the first model is better, also for a lower-is-better metric."""
    rng = np.random.default_rng(5)
    y = (rng.random(400) < 0.3).astype(int)
    perfect = np.where(y == 1, 0.9, 0.1) + rng.random(400) * 0.05
    noise = rng.random(400)
    low, high, mean = paired_bootstrap(y, perfect, noise, metric, ROUNDS[metric], 0.95, seed=2)
    assert 0.2 < low <= mean <= high
    worse_first = paired_bootstrap(y, noise, perfect, metric, ROUNDS[metric], 0.95, seed=2)
    assert worse_first[1] < -0.2  # swapped: the whole interval is below zero


def test_bootstrap_is_seeded_and_widens_with_confidence() -> None:
    rng = np.random.default_rng(9)
    y = (rng.random(300) < 0.3).astype(int)
    a, b = rng.random(300) + 0.3 * y, rng.random(300) + 0.2 * y
    first = paired_bootstrap(y, a, b, "roc_auc", 100, 0.9, seed=4)
    assert paired_bootstrap(y, a, b, "roc_auc", 100, 0.9, seed=4) == first
    wide = paired_bootstrap(y, a, b, "roc_auc", 100, 0.99, seed=4)
    assert wide[0] <= first[0] and first[1] <= wide[1]
    assert first[0] < first[1]


def test_bootstrap_with_no_rounds_or_one_class_is_nan() -> None:
    y = np.zeros(50, dtype=int)
    s = np.linspace(0, 1, 50)
    assert all(np.isnan(v) for v in paired_bootstrap(y, s, s, "roc_auc", 20, 0.95, seed=1))
    y[0] = 1
    assert all(np.isnan(v) for v in paired_bootstrap(y, s, s[::-1], "roc_auc", 0, 0.95, seed=1))
