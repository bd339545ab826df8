"""The team's analytics table, as their dbt-duckdb project builds it: `churn_features` in a
DuckDB file, one row per customer with a string id, a DATE column, NULLs, a rare tariff and an
11 % churn rate in `left_within_60d`. Here it is generated (seeded), standing in for
`dbt build`; `current_customers` is the table the pipeline scores, where a tariff launched
after training (`5g_max`) appears.

Train from a snapshot or a dated table (`churn_features_2025_06_30`), not from a table the
nightly `dbt build` rewrites: the gates re-read the training and evaluation rows at propose
time and refuse rows that changed (docs/bring-your-own-training.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TARIFFS = ["s", "m", "l", "xl"]
RARE = "legacy_flat"  # a rare level: about 0.5 % of customers
NEW = "5g_max"  # launched after training: only in current_customers


def churn_table(rows: int, seed: int, new_tariff_rows: int = 0) -> pd.DataFrame:
    """One row per customer; `new_tariff_rows` customers on a tariff no model saw."""
    rng = np.random.default_rng(seed)
    tariff = rng.choice([*TARIFFS, RARE], rows, p=[0.35, 0.3, 0.2, 0.145, 0.005]).astype(object)
    tariff[rng.choice(rows, new_tariff_rows, replace=False)] = NEW
    tenure = rng.integers(10, 2500, rows)
    fee = rng.choice(np.linspace(9.99, 79.99, 15), rows).round(2)
    fee_missing = rng.random(rows) < 0.04
    used = rng.gamma(2.0, 6.0, rows).round(1)
    used_missing = rng.random(rows) < 0.07
    billing = rng.poisson(0.4, rows)
    network = rng.poisson(0.3, rows)
    magenta_one = rng.random(rows) < 0.3
    logit = (
        -2.9
        + 1.6 * (tenure < 300)
        + 0.9 * (billing > 0)
        + 1.0 * (network > 1)
        - 1.0 * magenta_one
        + 0.025 * (fee - 40)
        + rng.normal(0, 0.3, rows)
    )
    churn = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "customer_id": [f"C-{i:07d}" for i in rng.permutation(rows) + 1_000_000],
            "signup_date": pd.Timestamp("2025-06-30") - pd.to_timedelta(tenure, unit="D"),
            "tariff": tariff,
            "tenure_days": tenure,
            "monthly_fee": np.where(fee_missing, np.nan, fee),
            "data_used_gb": np.where(used_missing, np.nan, used),
            "n_case_billing": billing,
            "n_case_network": network,
            "has_magenta_one": magenta_one,
            "left_within_60d": churn.astype(int),
        }
    )


def build(database: Path, rows: int = 8000, seed: int = 26) -> Path:
    """What `dbt build` leaves behind: `churn_features` (labelled) and `current_customers`
    (no label, 45 rows on the new tariff), DATE typed as dbt-duckdb types it."""
    import duckdb

    database.parent.mkdir(parents=True, exist_ok=True)
    labelled = churn_table(rows, seed)
    current = churn_table(3000, seed + 1, new_tariff_rows=45).drop(columns=["left_within_60d"])
    con = duckdb.connect(str(database))
    try:
        for name, frame in (("churn_features", labelled), ("current_customers", current)):
            con.register("frame_view", frame)
            con.execute(
                f"create or replace table {name} as select * replace "  # noqa: S608
                "(cast(signup_date as date) as signup_date) from frame_view"
            )
            con.unregister("frame_view")
    finally:
        con.close()
    return database
