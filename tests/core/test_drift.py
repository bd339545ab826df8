"""PSI and the binned summaries behind it, against hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from magenta_release.core import drift as health
from magenta_release.core.synthetic import generate


def test_psi_of_a_hand_computed_case() -> None:
    # expected 50/50, actual 80/20: 0.3*ln(0.8/0.5) + (-0.3)*ln(0.2/0.5)
    want = 0.3 * math.log(0.8 / 0.5) - 0.3 * math.log(0.2 / 0.5)
    assert health.psi([50, 50], [80, 20]) == pytest.approx(want)
    assert health.psi([50, 50], [80, 20]) == pytest.approx(0.4159, abs=1e-4)


def test_psi_is_zero_for_equal_shares_and_symmetric_in_its_arguments() -> None:
    assert health.psi([10, 30, 60], [100, 300, 600]) == pytest.approx(0.0)
    assert health.psi([10, 90], [40, 60]) == pytest.approx(health.psi([40, 60], [10, 90]))


def test_an_empty_bin_counts_as_a_tiny_share_not_infinity() -> None:
    value = health.psi([100, 0], [90, 10])
    want = (0.1 - 1e-4) * math.log(0.1 / 1e-4) + (0.9 - 1.0) * math.log(0.9 / 1.0)
    assert value == pytest.approx(want)
    assert math.isnan(health.psi([0, 0], [1, 2]))


def test_numeric_bins_are_training_quantiles_with_missing_apart() -> None:
    values = pd.Series([*range(1, 11), None, None])
    s = health.summarise_column(values, "numeric", bins=5)
    assert s["edges"] == pytest.approx([2.8, 4.6, 6.4, 8.2])
    assert s["counts"] == [2, 2, 2, 2, 2]  # bin i holds (edge i-1, edge i]
    assert s["missing"] == 2
    expected, actual = health.counts_like(s, pd.Series([100.0, 100.0, None]))
    assert expected == [*s["counts"], 2]
    assert actual == [0, 0, 0, 0, 2, 1]  # above the last edge, and one missing


def test_categories_rarer_than_the_minimum_are_other_and_unseen_ones_too() -> None:
    values = pd.Series(["a"] * 50 + ["b"] * 20 + ["rare"] * 3 + [None])
    s = health.summarise_column(values, "categorical", bins=10)
    assert s["categories"] == ["a", "b"] and s["counts"] == [50, 20]
    assert s["other"] == 3 and s["missing"] == 1
    expected, actual = health.counts_like(s, pd.Series(["a", "new", "new", None]))
    assert expected == [50, 20, 3, 1]
    assert actual == [1, 0, 2, 1]


def test_the_summary_holds_no_rows_and_drift_is_found_where_it_was_put() -> None:
    base, later = generate(3, 5000).table, generate(4, 5000, drift=0.8).table
    same = generate(5, 5000).table
    cols = ["age", "used_gb", "gross_mrc", "smartphone_brand_group"]
    scores = np.linspace(0, 1, len(base))
    summary = health.training_summary(base[cols], scores, ["smartphone_brand_group"])
    text = json.dumps(summary)
    assert len(text) < 5000  # a few numbers per column, not 5000 rows
    assert not any(str(i) in text for i in base["rating_account_id"].head(50))
    stable = health.psi_by_column(summary, same[cols], scores)
    drifted = health.psi_by_column(summary, later[cols], scores)
    assert max(stable.values()) < 0.05
    assert drifted["age"] > 0.2 and drifted["used_gb"] > 0.2
    assert drifted["gross_mrc"] < 0.05 and drifted["smartphone_brand_group"] < 0.05


def test_metric_ci_brackets_the_value_and_narrows_with_more_rows() -> None:
    rng = np.random.default_rng(1)

    def width(n: int) -> tuple[float, float]:
        y = rng.random(n) < 0.3
        z = np.where(y, rng.normal(1, 1, n), rng.normal(0, 1, n))
        scores = 1 / (1 + np.exp(-z))  # probabilities; the AUC does not change
        value, low, high = health.metric_ci(y.astype(int), scores, "roc_auc", 0.5, 200, 0.95)
        assert low < value < high
        return value, high - low

    (_, small), (value, large) = width(300), width(10_000)
    assert large < small / 3
    assert value == pytest.approx(0.76, abs=0.02)  # AUC of N(1,1) vs N(0,1): Phi(1/sqrt 2)
    _, low, high = health.metric_ci(
        np.array([0, 1, 0, 1]), np.arange(4.0) / 4, "pr_auc", 0.5, 0, 0.9
    )
    assert math.isnan(low) and math.isnan(high)


def test_shadow_difference_counts_changed_campaign_members() -> None:
    champion = np.arange(10.0)  # top 2 by score: rows 9 and 8
    challenger = np.array([9.0, 0, 0, 0, 0, 0, 0, 0, 1, 2])  # top 2: rows 0 and 9
    diff = health.shadow_difference(champion, challenger, 0.2)
    assert diff["campaign_size"] == 2 and diff["campaign_changed"] == 1
    assert diff["mean_abs_score_diff"] == pytest.approx(np.abs(champion - challenger).mean())


def test_bin_edges_of_a_continuous_column_are_no_rows_value() -> None:
    # a quantile is one row's exact value; a fee with 8 decimals would point at its row
    fees = np.round(np.random.default_rng(3).uniform(5, 70, 1001), 8)
    s = health.summarise_column(fees, "numeric", bins=10)
    assert len(s["edges"]) == 9
    assert not set(s["edges"]) & set(fees.tolist())
    assert np.quantile(fees, 0.5) in fees.tolist()  # what unrounded edges would have stored
    assert sum(s["counts"]) == 1001
