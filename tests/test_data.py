"""The synthetic generator: DESIGN.md §4's distribution facts, determinism, no identifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from magenta_release.core import synthetic as data
from magenta_release.core.errors import BadInput


@pytest.fixture(scope="module")
def big() -> data.ChurnData:
    return data.generate(seed=11, rows=60_000)


def test_same_seed_gives_identical_frames_and_other_seed_differs() -> None:
    a, b, c = data.generate(3, 5000), data.generate(3, 5000), data.generate(4, 5000)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert a.table.equals(b.table)
    assert not a.table.equals(c.table)


def test_churn_rate_is_about_three_percent(big: data.ChurnData) -> None:
    assert 0.025 < big.label.mean() < 0.035


def test_account_facts(big: data.ChurnData) -> None:
    a = big.accounts
    assert a["rating_account_id"].is_unique
    assert a["rating_account_id"].between(100_000, 999_999).all()
    assert a["customer_id"].str.fullmatch(r"[1-5]\.\d{6}").all()
    assert a["customer_id"].nunique() == pytest.approx(0.85 * len(a), rel=0.01)
    assert a["age"].between(18, 100).all()
    assert a["age"].dtype == np.int64
    assert (a["age"] >= 75).mean() == pytest.approx(0.05, abs=0.01)
    life, bind = a["contract_lifetime_days"], a["remaining_binding_days"]
    assert life.between(7, 1825).all()
    assert (life > 1095).mean() == pytest.approx(0.25, abs=0.01)
    assert (bind.abs() < life).all()
    assert bind.between(-730, 730).all()
    assert a["has_special_offer"].mean() == pytest.approx(0.3, abs=0.01)
    assert a["available_gb"].isna().mean() == pytest.approx(1 / 7, abs=0.01)
    assert set(a["gross_mrc"].unique()) <= set(np.round(np.linspace(5, 70, 50), 2))
    shares = a["smartphone_brand"].value_counts(normalize=True)
    assert shares["iPhone"] == pytest.approx(0.40, abs=0.01)
    assert shares["Xiaomi"] == pytest.approx(0.025, abs=0.005)


def test_usage_has_four_months_per_account(big: data.ChurnData) -> None:
    u = big.usage
    per_account = u.groupby("rating_account_id")["month"].agg(["count", "nunique"])
    assert (per_account["count"] == 4).all()
    assert (per_account["nunique"] == 4).all()
    assert set(u["month"]) == set(data.MONTHS)
    # equal parts of the four ranges, not in row order
    parts = pd.cut(u["used_gb"], [-0.01, 0.95, 4.95, 14.95, 70.1]).value_counts(normalize=True)
    assert parts.min() > 0.2
    assert (u["has_used_gb"] == (u["used_gb"] > 1)).all()


def test_interactions_topics_and_counts(big: data.ChurnData) -> None:
    i = big.interactions
    customers = big.accounts["customer_id"].nunique()
    assert i["customer_id"].nunique() == customers // 2
    topics = i.groupby("customer_id")["topic"].agg(["count", "nunique"])
    assert (topics["count"] == topics["nunique"]).all()  # distinct topics per customer
    assert topics["count"].between(1, 3).all()
    assert (topics["count"] == 1).mean() == pytest.approx(0.6, abs=0.02)
    assert set(i["topic"]) == set(data.TOPICS)
    assert i["n"].between(1, 10).all()
    assert (i["n"] == 1).mean() == pytest.approx(0.5, abs=0.02)
    assert i["days_since_last"].between(0, 180).all()


def test_features_fix_brands_and_keep_no_case_missing(big: data.ChurnData) -> None:
    t = big.table
    groups = t["smartphone_brand_group"].value_counts(normalize=True)
    assert groups["iPhone"] == pytest.approx(0.40, abs=0.01)  # the original lumped these in Other
    assert set(groups.index) == {"iPhone", "Samsung", "Huawei, Xiaomi", "Other"}
    no_case = t["n_cases"] == 0
    assert t.loc[no_case, "days_since_last_case"].isna().all()
    assert t.loc[~no_case, "days_since_last_case"].notna().all()
    zero_gb = t["available_gb"] == 0
    np.testing.assert_allclose(t.loc[zero_gb, "perc_used_gb"], t.loc[zero_gb, "used_gb"])
    assert not set(data.IDENTIFIERS) & set(data.FEATURES)
    assert list(big.features.columns) == list(data.FEATURES)


@pytest.mark.parametrize(("seed", "rows"), [(1, -5), (1, 0), (1, 10**9), (-1, 1000)])
def test_bad_sizes_are_refused(seed: int, rows: int) -> None:
    with pytest.raises(BadInput):
        data.generate(seed, rows)
