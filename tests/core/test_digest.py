"""Stored digests keep their values: the digest, the per-row hashes and the evaluation split
computed column by column (no copy of the table) equal what the first implementation computed
with `pd.util.hash_pandas_object` over a converted copy, so runs recorded before still verify.
The reference implementation below is that code, kept verbatim; the golden values were
computed with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from magenta_release.core import contract as dc
from magenta_release.core.contract import DataContract, RowDigest
from magenta_release.core.synthetic import generate


# ---- the implementation every stored digest was computed with ------------------------------
def reference_row_hashes(frame: pd.DataFrame) -> np.ndarray:
    hashes: np.ndarray = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashes


def reference_digest(frame: pd.DataFrame) -> str:
    ordered = frame.loc[:, sorted(frame.columns)]
    kinds = [
        [str(c), "number" if pd.api.types.is_numeric_dtype(t) else "text"]
        for c, t in ordered.dtypes.items()
    ]
    numbers = ordered.apply(
        lambda s: s.astype("float64") if pd.api.types.is_numeric_dtype(s) else s.astype(object)
    )
    h = hashlib.sha256(json.dumps(kinds).encode())
    h.update(np.sort(reference_row_hashes(numbers)).tobytes())
    return h.hexdigest()


def reference_mask(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    text = frame[contract.key].astype(object).map(str)
    if contract.split_salt:
        text = contract.split_salt + "\x1f" + text
    buckets = pd.util.hash_pandas_object(text, index=False).to_numpy() % dc.SPLIT_BUCKETS
    mask: np.ndarray = buckets < round(contract.evaluation_fraction * dc.SPLIT_BUCKETS)
    return mask


def reference_key_text(col: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        return col.astype(object).map(str)
    values = col.to_numpy(dtype="float64", na_value=np.nan)
    if np.isfinite(values).all() and (values == np.round(values)).all():
        return pd.Series(values.astype("int64"), index=col.index).astype(object).map(str)
    return col.astype(object).map(str)


# ---- frames with every kind of column a table brings ----------------------------------------
def _mixed(rows: int = 10_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "zeta": rng.integers(-5, 5, rows),
            "alpha": rng.random(rows),
            "text": pd.Series(
                rng.choice(np.array(["x", "y", None], dtype=object), rows), dtype="str"
            ),
            "objects": pd.Series(rng.choice(["x", "yy", "zzz"], rows), dtype=object),
            "flag": rng.random(rows) > 0.5,
            "flag_or_none": pd.Series(
                rng.choice(np.array([True, False, None], dtype=object), rows), dtype=object
            ),
            "small": rng.integers(0, 1000, rows).astype("int32"),
            "gaps": np.where(rng.random(rows) > 0.5, np.nan, 1.5),
            "negative_zero": np.where(rng.random(rows) > 0.5, -0.0, 0.0),
            "level": pd.Categorical(rng.choice(np.array(["p", "q", None], dtype=object), rows)),
            "nullable": pd.array(
                rng.choice(np.array([1, 2, None], dtype=object), rows), dtype="Int64"
            ),
            "unsigned": rng.integers(0, 200, rows).astype("uint8"),
            "when": pd.to_datetime(rng.integers(1_600_000_000, 1_700_000_000, rows), unit="s"),
            "missing_as_na": pd.Series(
                rng.choice(np.array(["x", "y", None], dtype=object), rows), dtype="string"
            ),
            # mostly distinct text (hashed value by value), with and without missing values
            "ids": pd.Series([f"c{i}" for i in range(rows)], dtype="str"),
            "ids_or_none": pd.Series(
                [f"c{i}" if i % 9 else None for i in range(rows)], dtype=object
            ),
        }
    )


FRAMES: dict[str, Callable[[], pd.DataFrame]] = {
    "generator": lambda: generate(42, 2000).table,
    "mixed": _mixed,
    "one number": lambda: _mixed()[["alpha"]],
    "one text": lambda: _mixed()[["text"]],
    "no rows": lambda: _mixed().iloc[:0],
    "one row": lambda: _mixed().iloc[:1],
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_digest_and_row_hashes_equal_the_reference(name: str) -> None:
    frame = FRAMES[name]()
    assert dc.digest(frame) == reference_digest(frame)
    assert (dc.row_hashes(frame) == reference_row_hashes(frame)).all()
    rows = RowDigest.of(frame)
    assert rows.digest() == reference_digest(frame)
    # the text columns' hashes the digest computed are reused for the row order: same result
    assert (dc.row_hashes(frame, rows.text) == reference_row_hashes(frame)).all()


def test_a_subset_digest_from_the_whole_tables_hashes_equals_the_reference() -> None:
    frame = _mixed(5000, seed=3)
    rows = RowDigest.of(frame)
    picked = np.random.default_rng(1).permutation(len(frame))[:1234]
    assert rows.digest(picked) == reference_digest(frame.take(picked))
    assert rows.digest(picked[::-1]) == rows.digest(picked)  # the order of rows does not count


@pytest.mark.parametrize(
    "key",
    [
        lambda f: f["rating_account_id"],
        lambda f: f["rating_account_id"].astype("int32"),
        lambda f: f["rating_account_id"] - 600_000,  # negative keys
        lambda f: f["rating_account_id"].astype("uint64"),
        lambda f: f["customer_id"],  # str dtype
        lambda f: f["customer_id"].astype(object),
        lambda f: f["rating_account_id"].astype("float64"),  # a key read as a float
        lambda f: f["rating_account_id"].astype(str).astype(object).where(f.index % 7 > 0),
        lambda f: pd.Series(pd.array(f["rating_account_id"], dtype="Int64")),
        lambda f: f["rating_account_id"] % 2 == 0,  # booleans: str(True)
    ],
    ids=["int64", "int32", "negative", "uint64", "str", "object", "float", "none", "Int64", "bool"],
)
def test_evaluation_mask_equals_the_reference(key: object) -> None:
    frame = generate(7, 5000).table
    keyed = frame.assign(rating_account_id=key(frame))  # type: ignore[operator]
    for contract in (DataContract(evaluation_fraction=0.3), DataContract(split_salt="s1")):
        assert (dc.evaluation_mask(keyed, contract) == reference_mask(keyed, contract)).all()
    found = dc.key_text(keyed["rating_account_id"])
    assert found.tolist() == reference_key_text(keyed["rating_account_id"]).tolist()
    reference = pd.util.hash_pandas_object(
        reference_key_text(keyed["rating_account_id"]), index=False
    ).to_numpy()
    assert (dc.key_hashes(keyed, "rating_account_id") == reference).all()


def test_golden_values_of_the_generator_table() -> None:
    """Computed with the reference implementation when it was the code (a check that does not
    depend on the copy above staying unedited)."""
    table = generate(42, 2000).table
    assert dc.digest(table) == "7ece47d7aa8d9c8c9c2475067dc9907e1ca7ac1981040570871397d6551a0d69"
    assert (
        hashlib.sha256(dc.row_hashes(table).tobytes()).hexdigest()
        == "5de5a4b172e1ba8fb70a8e7c7b433043e2b4c2f4aa8772c8d708a51552e7f449"
    )
    mask = dc.evaluation_mask(table, DataContract())
    assert int(mask.sum()) == 433
    assert (
        hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()
        == "e11b5ff97bec647d76b8ecfb4d3598d64582843baedb5a501099f5e200ce3f23"
    )
