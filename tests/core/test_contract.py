"""The data contract: the digest ignores row and column order but nothing else, the split is a
stable function of the key, and validation names every column at fault."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from magenta_release.core.contract import (
    DataContract,
    check_columns,
    digest,
    evaluation_mask,
    validate,
)
from magenta_release.core.errors import BadInput

CONTRACT = DataContract()


def _frame(rows: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rating_account_id": rng.choice(np.arange(100_000, 1_000_000), rows, replace=False),
            "customer_id": [f"1.{i:06d}" for i in range(rows)],
            "age": rng.integers(18, 100, rows),
            "gross_mrc": rng.random(rows).round(2) * 70,
            "smartphone_brand_group": rng.choice(["iPhone", "Samsung", "Other"], rows),
            "has_churned": (rng.random(rows) < 0.1).astype(int),
        }
    )


def test_digest_ignores_row_and_column_order() -> None:
    frame = _frame()
    shuffled = frame.sample(frac=1, random_state=3)[list(reversed(frame.columns))]
    assert digest(shuffled) == digest(frame)
    assert digest(shuffled.reset_index(drop=True)) == digest(frame)


def test_digest_sees_values_rows_and_names() -> None:
    frame = _frame()
    base = digest(frame)
    changed = frame.copy()
    changed.loc[5, "age"] += 1
    assert digest(changed) != base
    assert digest(frame.iloc[1:]) != base
    assert digest(frame.rename(columns={"age": "age_years"})) != base
    assert digest(frame.assign(age=frame["age"].astype(str))) != base  # text is not a number


def test_digest_ignores_integer_versus_float_storage() -> None:
    frame = _frame()
    assert digest(frame.assign(age=frame["age"].astype("float64"))) == digest(frame)


def test_evaluation_mask_is_a_stable_function_of_the_key() -> None:
    frame = _frame(20_000, seed=1)
    mask = evaluation_mask(frame, CONTRACT)
    assert mask.dtype == bool
    assert abs(mask.mean() - CONTRACT.evaluation_fraction) < 0.02
    order = np.random.default_rng(2).permutation(len(frame))
    again = evaluation_mask(frame.iloc[order], CONTRACT)
    assert (again == mask[order]).all()  # the same rows, wherever they are
    as_text = frame.assign(rating_account_id=frame["rating_account_id"].astype(str))
    assert (evaluation_mask(as_text, CONTRACT) == mask).all()  # int or text key: same side
    other_columns = frame.assign(age=0, has_churned=1)
    assert (evaluation_mask(other_columns, CONTRACT) == mask).all()


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_evaluation_mask_follows_the_fraction(fraction: float) -> None:
    frame = _frame(20_000, seed=4)
    mask = evaluation_mask(frame, DataContract(evaluation_fraction=fraction))
    assert abs(mask.mean() - fraction) < 0.02
    assert (mask <= evaluation_mask(frame, DataContract(evaluation_fraction=0.9))).all()


def _validate(frame: pd.DataFrame) -> None:
    cols = check_columns(CONTRACT, list(frame.columns), "t.parquet")
    validate(frame, CONTRACT, cols, "t.parquet")


def test_a_good_table_validates() -> None:
    frame = _frame()
    cols = check_columns(CONTRACT, list(frame.columns), "t")
    assert cols.numeric == ["age", "gross_mrc"]
    assert cols.categorical == ["smartphone_brand_group"]
    _validate(frame)


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (lambda f: f.iloc[:0], ["t.parquet: the table has no rows"]),
        (lambda f: f.assign(age="old"), ["age must be numeric"]),
        (lambda f: f.assign(has_churned=2), ["target has_churned is not binary (found 2)"]),
        (
            lambda f: f.assign(has_churned=np.where(f.index == 3, np.nan, f["has_churned"])),
            ["has_churned has missing values"],
        ),
        (
            lambda f: pd.concat([f, f.iloc[:4]]),  # identifiers unique as a combination
            ["duplicate identifiers (rating_account_id, customer_id) in 4 rows"],
        ),
        (
            lambda f: f.assign(age="old", gross_mrc="x", has_churned=5),
            ["age must be numeric", "gross_mrc must be numeric", "is not binary"],
        ),
    ],
    ids=["empty", "text", "not-binary", "missing-target", "duplicates", "several"],
)
def test_validate_names_every_column_at_fault(
    change: Callable[[pd.DataFrame], pd.DataFrame], needles: list[str]
) -> None:
    with pytest.raises(BadInput) as caught:
        _validate(change(_frame()))
    message = str(caught.value)
    assert message.startswith("t.parquet: ")
    for needle in needles:
        assert needle in message
    assert "\n" not in message


def test_missing_columns_are_named() -> None:
    frame = _frame().drop(columns=["customer_id", "has_churned"])
    with pytest.raises(BadInput) as caught:
        check_columns(CONTRACT, list(frame.columns), "t")
    assert "missing contract columns customer_id, has_churned" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"target": "customer_id"}, "also listed as an identifier"),
        ({"features": ("age", "customer_id")}, "identifier columns customer_id are listed"),
        ({"categorical": ("has_churned",)}, "is listed as a feature"),
        ({"features": ("age",), "categorical": ("brand",)}, "brand are not in features"),
        ({"evaluation_fraction": 1.0}, "evaluation_fraction"),
        ({"identifiers": ()}, "identifiers"),
        ({"split": "random"}, "split"),
    ],
)
def test_contract_refuses_contradictions(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DataContract.model_validate(fields)
    assert needle in str(caught.value)
