"""The baseline for the data-generation benchmark: the same distributions as
`magenta_release.core.synthetic`, drawn row by row with numpy's scalar calls, the way the original
pipeline drew its per-row columns (a loop over accounts for the binding days, a loop over
customers for the case topics)."""

from __future__ import annotations

from typing import Any

import numpy as np

from magenta_release.core.synthetic import BRAND_P, BRANDS, CASE_COUNT_P, MONTHS, TOPICS

GB = [0, 10, 20, 30, 40, 50, None]
MRC = [round(float(v), 2) for v in np.linspace(5, 70, 50)]
USAGE_RANGES = [(0.0, 1.0), (1.0, 5.0), (5.0, 15.0), (15.0, 70.0)]


def generate_rows(
    seed: int, rows: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(900_000, size=rows, replace=False) + 100_000
    n_customers = round(0.85 * rows)
    codes = rng.choice(5_000_000, size=n_customers, replace=False)
    customers = [f"{c // 1_000_000 + 1}.{c % 1_000_000:06d}" for c in codes]
    accounts, usage = [], []
    for i, account in enumerate(ids):
        customer = customers[i] if i < n_customers else customers[rng.integers(n_customers)]
        part = rng.choice(3, p=[0.8, 0.15, 0.05])
        age = (
            round(rng.normal(45, 7))
            if part == 0
            else int(rng.integers(18, 35))
            if part == 1
            else int(rng.integers(75, 101))
        )
        age = min(max(age, 18), 100)
        lifetime = (
            int(rng.integers(1096, 1826)) if rng.random() < 0.25 else int(rng.integers(7, 1096))
        )
        binding = int(rng.integers(max(-730, 1 - lifetime), min(730, lifetime - 1) + 1))
        accounts.append(
            {
                "rating_account_id": int(account),
                "customer_id": customer,
                "age": age,
                "contract_lifetime_days": lifetime,
                "remaining_binding_days": binding,
                "has_special_offer": rng.random() < 0.3,
                "is_magenta1_customer": rng.random() < 0.3,
                "available_gb": GB[rng.integers(len(GB))],
                "gross_mrc": MRC[rng.integers(50)],
                "smartphone_brand": BRANDS[rng.choice(len(BRANDS), p=BRAND_P)],
            }
        )
        for month in MONTHS:
            low, high = USAGE_RANGES[rng.integers(4)]
            used = round(float(rng.uniform(low, high)), 1)
            usage.append(
                {
                    "rating_account_id": int(account),
                    "month": month,
                    "has_used_roaming": rng.random() < 0.3,
                    "used_gb": used,
                    "has_used_gb": used > 1,
                }
            )
    interactions = []
    for c in rng.choice(n_customers, size=n_customers // 2, replace=False):
        k = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        for topic in rng.choice(TOPICS, size=k, replace=False):
            interactions.append(
                {
                    "customer_id": customers[c],
                    "topic": str(topic),
                    "n": int(rng.choice(10, p=CASE_COUNT_P)) + 1,
                    "days_since_last": int(rng.integers(0, 181)),
                }
            )
    return accounts, usage, interactions
