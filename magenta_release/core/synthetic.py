"""Synthetic churn data in the team's domain (docs/current-process.md): seeded, vectorised,
reproducible.

One `numpy.random.Generator` drives everything, draws happen in a fixed order, and no per-row
Python loop exists, so the same (seed, rows) gives byte-identical frames.

Drift knob (for champion health, `magenta-release health`): `drift` in [0, 1], default 0, makes
the population of a later month. 0 is the undrifted distribution, byte for byte (no draw
changes). Above 0, with the same number and order of draws:

- age mix: the young share (18-34) grows from 15 % to 15 % + 40 % x drift (taken from the
  Normal part), and the Normal part's mean moves from 45 to 45 - 8 x drift;
- usage: monthly `used_gb` is scaled by 1 + drift (heavier data use);
- churn relationship: the label's probability blends the old rule with a new one by `drift`
  (young customers, low tariffs, and special-offer holders churn; contract age stops
  mattering), then is rescaled to the same 3 % rate.

Name it in the source URI: `synthetic://magenta-churn-synthetic/v1?seed=7&rows=5000&drift=0.5`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from magenta_release.core.errors import BadInput
from magenta_release.core.limits import MAX_ROWS, MIN_ROWS

GENERATOR = "magenta-churn-synthetic"
GENERATOR_VERSION = "1"

MONTHS = ("2024-04", "2024-05", "2024-06", "2024-07")
TOPICS = (
    "produkte&services-tarifdetails",
    "produkte&services-tarifwechsel",
    "rechnungsanfragen",
    "vvl",
)
BRANDS = ("iPhone", "Samsung", "Huawei", "Xiaomi", "OnePlus")
BRAND_P = (0.40, 0.35, 0.20, 0.025, 0.025)
BRAND_GROUPS = {
    "iPhone": "iPhone",
    "Samsung": "Samsung",
    "Huawei": "Huawei, Xiaomi",
    "Xiaomi": "Huawei, Xiaomi",
}
CASE_COUNT_P = (0.5, 0.3, 0.1, 0.05, 0.02, 0.01, 0.005, 0.005, 0.005, 0.005)
TARGET_CHURN_RATE = 0.03
MAX_DRIFT = 1.0
IDENTIFIERS = ("rating_account_id", "customer_id")
LABEL = "has_churned"


def _topic_columns(prefix: str) -> list[str]:
    return [f"{prefix}{t}" for t in TOPICS]


CATEGORICAL_FEATURES = ("smartphone_brand_group",)
NUMERIC_FEATURES = (
    "age",
    "contract_lifetime_days",
    "remaining_binding_days",
    "has_special_offer",
    "is_magenta1_customer",
    "available_gb",
    "gross_mrc",
    "has_used_roaming",
    "used_gb",
    "has_used_gb",
    "perc_used_gb",
    *_topic_columns("n_case_"),
    *_topic_columns("days_since_last_case_"),
    "n_cases",
    "days_since_last_case",
)
FEATURES = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)


@dataclass(frozen=True)
class DatasetRef:
    """What identifies a generated data set: regenerate it from these."""

    generator: str
    version: str
    seed: int
    rows: int
    drift: float = 0.0

    @property
    def uri(self) -> str:
        """The source URI that names (and rebuilds) this data set: `sources.read` takes it.
        `drift` appears only when set, so undrifted URIs stay as they always were."""
        uri = f"synthetic://{self.generator}/v{self.version}?seed={self.seed}&rows={self.rows}"
        return uri if self.drift == 0 else f"{uri}&drift={self.drift:g}"


@dataclass(frozen=True)
class ChurnData:
    """The raw tables and the model-ready table (features, identifiers and label)."""

    ref: DatasetRef
    accounts: pd.DataFrame
    usage: pd.DataFrame
    interactions: pd.DataFrame
    table: pd.DataFrame  # identifiers + FEATURES + LABEL, one row per account

    @property
    def features(self) -> pd.DataFrame:
        return self.table.loc[:, list(FEATURES)]

    @property
    def label(self) -> pd.Series:
        return self.table[LABEL]


def check_size(rows: int) -> None:
    if not MIN_ROWS <= rows <= MAX_ROWS:
        raise BadInput(
            f"--rows {rows} is out of range; use {MIN_ROWS} to {MAX_ROWS} accounts "
            "(account ids are drawn without replacement from 900,000 values)"
        )


def check_drift(drift: float) -> None:
    if not 0.0 <= drift <= MAX_DRIFT:
        raise BadInput(f"drift={drift:g} is out of range; use 0 (no drift) to {MAX_DRIFT:g}")


def generate_tables(
    seed: int, rows: int, drift: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The raw source tables (accounts with label, monthly usage, interactions); `drift`
    as the module docstring says (0: the reference population)."""
    check_size(rows)
    check_drift(drift)
    if seed < 0:
        raise BadInput(f"--seed {seed} is negative; use a seed >= 0")
    rng = np.random.default_rng(seed)
    accounts = generate_accounts(rng, rows, drift)
    usage = generate_usage(rng, accounts["rating_account_id"].to_numpy(), drift)
    interactions = generate_interactions(rng, accounts["customer_id"].unique())
    accounts[LABEL] = churn_label(rng, accounts, drift)
    return accounts, usage, interactions


def generate(seed: int, rows: int, drift: float = 0.0) -> ChurnData:
    """Generate accounts, usage, interactions and the joined, labelled feature table."""
    accounts, usage, interactions = generate_tables(seed, rows, drift)
    table = build_features(accounts, usage, interactions)
    ref = DatasetRef(GENERATOR, GENERATOR_VERSION, seed, rows, drift)
    return ChurnData(ref, accounts, usage, interactions, table)


def _mixture(rng: np.random.Generator, n: int, p: tuple[float, ...]) -> np.ndarray:
    return rng.choice(len(p), size=n, p=p)


def generate_accounts(rng: np.random.Generator, rows: int, drift: float = 0.0) -> pd.DataFrame:
    account_ids = rng.choice(900_000, size=rows, replace=False) + 100_000

    n_customers = max(1, round(0.85 * rows))
    codes = rng.choice(5_000_000, size=n_customers, replace=False)
    customers = (
        pd.Series(codes // 1_000_000 + 1).astype(str)
        + "."
        + pd.Series(codes % 1_000_000).astype(str).str.zfill(6)
    )
    # Every customer holds at least one account; the remaining accounts go to customers drawn
    # with replacement, so the number of distinct customers is 0.85 x rows.
    owner = np.concatenate(
        [np.arange(n_customers), rng.integers(0, n_customers, size=rows - n_customers)]
    )
    owner = rng.permutation(owner)

    young = 0.40 * drift  # drift moves this share from the Normal part to the young part
    part = _mixture(rng, rows, (0.80 - young, 0.15 + young, 0.05))
    age = np.select(
        [part == 0, part == 1],
        [np.rint(rng.normal(45 - 8 * drift, 7, rows)), rng.integers(18, 35, rows)],
        rng.integers(75, 101, rows),
    )
    age = np.clip(age, 18, 100).astype(np.int64)

    long = rng.random(rows) < 0.25
    lifetime = np.where(long, rng.integers(1096, 1826, rows), rng.integers(7, 1096, rows))
    low = np.maximum(-730, 1 - lifetime)
    high = np.minimum(730, lifetime - 1)
    binding = rng.integers(low, high + 1)  # |binding| < lifetime, drawn in range directly

    gb_values = np.array([0, 10, 20, 30, 40, 50, np.nan])
    mrc_values = np.round(np.linspace(5, 70, 50), 2)
    return pd.DataFrame(
        {
            "rating_account_id": account_ids.astype(np.int64),
            "customer_id": customers.to_numpy(dtype=object)[owner],
            "age": age,
            "contract_lifetime_days": lifetime.astype(np.int64),
            "remaining_binding_days": binding.astype(np.int64),
            "has_special_offer": rng.random(rows) < 0.3,
            "is_magenta1_customer": rng.random(rows) < 0.3,
            "available_gb": gb_values[rng.integers(0, len(gb_values), rows)],
            "gross_mrc": mrc_values[rng.integers(0, len(mrc_values), rows)],
            "smartphone_brand": np.asarray(BRANDS, dtype=object)[_mixture(rng, rows, BRAND_P)],
        }
    )


def generate_usage(
    rng: np.random.Generator, account_ids: np.ndarray, drift: float = 0.0
) -> pd.DataFrame:
    """Four months of usage per account (long format); drift scales the volume."""
    n = len(account_ids) * len(MONTHS)
    # Equal parts of four uniform ranges, shuffled so the part does not follow row order.
    part = rng.permutation(np.arange(n) % 4)
    lows = np.array([0.0, 1.0, 5.0, 15.0])
    highs = np.array([1.0, 5.0, 15.0, 70.0])
    raw = lows[part] + rng.random(n) * (highs[part] - lows[part])
    used = np.round(raw if drift == 0 else raw * (1 + drift), 1)
    return pd.DataFrame(
        {
            "rating_account_id": np.repeat(account_ids, len(MONTHS)),
            "month": np.tile(np.asarray(MONTHS, dtype=object), len(account_ids)),
            "has_used_roaming": rng.random(n) < 0.3,
            "used_gb": used,
            "has_used_gb": used > 1,
        }
    )


def generate_interactions(rng: np.random.Generator, customers: np.ndarray) -> pd.DataFrame:
    """Service cases: half of the customers, 1-3 distinct topics each (long format)."""
    with_cases = rng.choice(customers, size=len(customers) // 2, replace=False)
    k = _mixture(rng, len(with_cases), (0.6, 0.3, 0.1)) + 1
    # A random permutation of the topics per customer; keep its first k entries.
    order = np.argsort(rng.random((len(with_cases), len(TOPICS))), axis=1)
    keep = np.arange(len(TOPICS))[None, :] < k[:, None]
    rows = int(keep.sum())
    return pd.DataFrame(
        {
            "customer_id": np.repeat(with_cases, k),
            "topic": np.asarray(TOPICS, dtype=object)[order[keep]],
            "n": _mixture(rng, rows, CASE_COUNT_P) + 1,
            "days_since_last": rng.integers(0, 181, rows),
        }
    )


def churn_label(rng: np.random.Generator, a: pd.DataFrame, drift: float = 0.0) -> np.ndarray:
    p = (
        0.10 * (a["age"] > 45)
        + 0.15 * a["contract_lifetime_days"].between(650, 850)
        + 0.20 * a["remaining_binding_days"].between(60, 120)
        - 0.10 * ~a["has_special_offer"]
        - 0.10 * ~a["is_magenta1_customer"]
        + 0.05 * (a["available_gb"] > 30)
        + 0.10 * (a["gross_mrc"] > 35)
    ).to_numpy(dtype=float)
    if drift > 0:
        # A changed relationship: who churns is no longer who churned at training.
        new = (
            0.20 * (a["age"] < 35)
            + 0.15 * (a["gross_mrc"] < 20)
            + 0.10 * a["has_special_offer"]
            + 0.05 * a["is_magenta1_customer"]
        ).to_numpy(dtype=float)
        p = (1 - drift) * p + drift * new
    p = np.clip(p, 0.0, 1.0)
    if p.mean() > 0:
        p = np.clip(p * TARGET_CHURN_RATE / p.mean(), 0.0, 1.0)
    churned: np.ndarray = rng.random(len(p)) < p
    return churned


def build_features(
    accounts: pd.DataFrame, usage: pd.DataFrame, interactions: pd.DataFrame
) -> pd.DataFrame:
    """Join accounts, aggregated usage and pivoted interactions into one row per account."""
    agg = usage.groupby("rating_account_id", sort=False).agg(
        has_used_roaming=("has_used_roaming", "max"),
        used_gb=("used_gb", "sum"),
        has_used_gb=("has_used_gb", "max"),
    )
    agg["used_gb"] = agg["used_gb"].round(1)
    cases = interactions.pivot_table(
        index="customer_id",
        columns="topic",
        values=["n", "days_since_last"],
        aggfunc={"n": "sum", "days_since_last": "min"},
    )
    n_case = cases["n"].reindex(columns=list(TOPICS))
    days = cases["days_since_last"].reindex(columns=list(TOPICS))
    per_customer = pd.concat(
        [
            n_case.set_axis(_topic_columns("n_case_"), axis=1),
            days.set_axis(_topic_columns("days_since_last_case_"), axis=1),
        ],
        axis=1,
    )
    per_customer["n_cases"] = n_case.sum(axis=1, min_count=1)
    per_customer["days_since_last_case"] = days.min(axis=1)

    t = accounts.join(agg, on="rating_account_id").join(per_customer, on="customer_id")
    n_cols = [*_topic_columns("n_case_"), "n_cases"]
    t[n_cols] = t[n_cols].fillna(0)  # no case = zero cases; days since last case stays missing
    t["available_gb"] = t["available_gb"].fillna(0)
    t["perc_used_gb"] = np.where(
        t["available_gb"] > 0,
        t["used_gb"] / t["available_gb"].where(t["available_gb"] > 0, 1),
        t["used_gb"],
    )
    t["smartphone_brand_group"] = (
        t["smartphone_brand"].map(BRAND_GROUPS).fillna("Other").astype(object)
    )
    for col in NUMERIC_FEATURES:
        t[col] = t[col].astype(np.float64)
    return t.loc[:, [*IDENTIFIERS, *FEATURES, LABEL]].reset_index(drop=True)
