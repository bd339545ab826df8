"""The bootstraps group each model's scores once (`gates.Ranked`) instead of sorting per
resample or re-binning per metric: the confidence intervals are the ones the per-resample code
gave (the same resamples; ROC-AUC and PR-AUC summed in another order, so equal to 1e-12, every
other metric bit for bit). The reference functions below are that code, kept verbatim."""

from __future__ import annotations

import numpy as np
import pytest

from magenta_release.core import gates
from magenta_release.core.gates import auc_ranks, weighted_ap, weighted_auc
from magenta_release.core.metrics import REPORTED_METRICS
from magenta_release.core.policy import Policy


def reference_intervals(
    y: np.ndarray, scores: np.ndarray, rounds: int, confidence: float, seed: int = 0
) -> dict[str, tuple[float, float]]:
    n = len(y)
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=int)
    prep = auc_ranks(scores)
    order = np.argsort(-scores, kind="stable")
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    loss = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    squared = (scores - y) ** 2
    k = max(1, round(n * 0.10))
    samples: dict[str, list[float]] = {m: [] for m in REPORTED_METRICS}
    for _ in range(rounds):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        positives = float((w * y).sum())
        if positives == 0 or positives == n:
            continue
        cw = np.cumsum(w[order])
        taken = np.clip(k - (cw - w[order]), 0, w[order])
        top_pos = float((taken * y[order]).sum())
        samples["roc_auc"].append(weighted_auc(y, w, *prep))
        samples["pr_auc"].append(weighted_ap(y, w, *prep))
        samples["lift_at_10"].append((top_pos / k) / (positives / n))
        samples["recall_at_10"].append(top_pos / positives)
        samples["brier"].append(float((w * squared).sum() / n))
        samples["log_loss"].append(float((w * loss).sum() / n))
    tail = (1 - confidence) / 2 * 100
    return {
        m: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
        for m, v in samples.items()
        if v
    }


def reference_paired_auc(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, rounds: int, seed: int
) -> list[float]:
    rng = np.random.default_rng(seed)
    n = len(y)
    rank_a, rank_b = auc_ranks(a), auc_ranks(b)
    diffs = []
    for _ in range(rounds):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        d = weighted_auc(y, w, *rank_a) - weighted_auc(y, w, *rank_b)
        if np.isfinite(d):
            diffs.append(d)
    return diffs


def reference_value_diffs(
    policy: Policy, y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0
) -> list[float]:
    v = policy.value
    n = len(y)
    k = max(1, round(v.campaign_fraction * n))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(policy.gates.bootstrap_rounds):
        idx = rng.integers(0, n, n)
        diffs.append(
            gates.campaign_value(y[idx], a[idx], k, v) - gates.campaign_value(y[idx], b[idx], k, v)
        )
    return diffs


def _data(n: int, ties: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    a = rng.random(n) * 0.6 + y * 0.3
    b = rng.random(n) * 0.7 + y * 0.2
    if ties:  # tree models score many rows alike
        a, b = np.round(a, 2), np.round(b, 2)
    return y, a, b


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "tied"])
def test_intervals_equal_the_per_resample_code(ties: bool) -> None:
    y, a, _ = _data(3000, ties)
    expected = reference_intervals(y, a, 60, 0.9, seed=3)
    found = gates.bootstrap_intervals(y, a, 60, 0.9, seed=3)
    assert set(found) == set(expected) == set(REPORTED_METRICS)  # every metric has a CI
    for metric in REPORTED_METRICS:
        assert found[metric] == _same(metric, expected[metric])
        # one metric alone: the same resamples, the same CI
        only = gates.bootstrap_intervals(y, a, 60, 0.9, seed=3, metrics=(metric,))
        assert only == {metric: found[metric]}


def _same(metric: str, value: tuple[float, float]) -> object:
    return pytest.approx(value, rel=1e-12, abs=0) if metric in ("roc_auc", "pr_auc") else value


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "tied"])
def test_paired_auc_bootstrap_equals_the_per_resample_code(ties: bool) -> None:
    y, a, b = _data(3000, ties, seed=1)
    diffs = reference_paired_auc(y, a, b, 80, seed=5)
    tail = (1 - 0.95) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    found = gates.paired_bootstrap(y, a, b, "roc_auc", 80, 0.95, 5)
    assert found == pytest.approx((low, high, np.mean(diffs)), rel=1e-9, abs=1e-15)
    assert found[0] < found[1]  # a positive control: a real interval, not (nan, nan)


def test_value_gate_ci_equals_re_sorting_each_resample() -> None:
    """With no tied scores at the cut the CI is the same number; ties at the cut are taken in
    row order (not the resample's), which the point value always did."""
    policy = Policy.model_validate(
        {"model": {"registered_name": "m"}, "gates": {"bootstrap_rounds": 50}}
    )
    y, a, b = _data(4000, ties=False, seed=2)
    _, evidence = gates.value_gate(policy, y, a, b)
    diffs = reference_value_diffs(policy, y, a, b)
    tail = (1 - policy.gates.bootstrap_confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    assert (evidence["ci_low"], evidence["ci_high"]) == (float(low), float(high))
    k = evidence["k"]
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    assert evidence["changed"] == k - len(top_a & top_b) > 0
