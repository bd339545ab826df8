"""`--param KEY=VALUE` parsing: bounds, types, unknown keys, non-finite numbers."""

from __future__ import annotations

import pytest

from magenta_release.core.errors import BadInput
from magenta_release.core.pipeline import DEFAULT_PARAMS, parse_params


def test_only_the_given_keys_come_back_typed() -> None:
    got = parse_params(["max_depth=6", " learning_rate = 0.05 ", "max_bin=2", "gamma=0"])
    assert got == {"max_depth": 6, "learning_rate": 0.05, "max_bin": 2, "gamma": 0.0}
    assert isinstance(got["max_depth"], int) and isinstance(got["gamma"], float)
    assert parse_params([]) == {}


def test_last_value_of_a_repeated_key_wins() -> None:
    assert parse_params(["max_depth=3", "max_depth=5"]) == {"max_depth": 5}


def test_defaults_are_inside_their_bounds() -> None:
    assert parse_params([f"{k}={v}" for k, v in DEFAULT_PARAMS.items()]) == DEFAULT_PARAMS


@pytest.mark.parametrize(
    ("pair", "needle"),
    [
        ("max_depth", "is not KEY=VALUE"),
        ("=3", "is not KEY=VALUE"),
        ("depth=3", "'depth' is not a tunable parameter"),
        ("__class__=1", "is not a tunable parameter"),
        ("booster=gblinear", "is not a tunable parameter"),
        ("max_depth=3.5", "max_depth='3.5' must be an integer"),
        ("max_depth=deep", "must be an integer"),
        ("max_depth=", "must be an integer"),
        ("learning_rate=fast", "learning_rate='fast' must be a number"),
        ("learning_rate=1e999", "must be a number"),
        ("learning_rate=nan", "must be a number"),
        ("learning_rate=-inf", "must be a number"),
        ("learning_rate=0", "learning_rate=0 is out of range; use 0.0 to 1.0"),
        ("learning_rate=1.5", "is out of range"),
        ("max_bin=1", "max_bin=1 is out of range; use 2 to 1024"),
        ("max_depth=99999999999", "max_depth=99999999999 is out of range; use 1 to 32"),
        ("n_estimators=0", "is out of range"),
        ("subsample=0", "is out of range"),
        ("scale_pos_weight=0", "is out of range"),
    ],
)
def test_bad_params_are_refused_by_name(pair: str, needle: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_params(["max_depth=3", pair])
    assert needle in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("pair", ["max_depth=1", "max_depth=32", "learning_rate=1", "max_bin=1024"])
def test_bounds_are_inclusive(pair: str) -> None:
    key, _, value = pair.partition("=")
    assert parse_params([pair]) == {key: type(DEFAULT_PARAMS.get(key, 1))(value)}
