"""The pure rules of issue 26, each with a case that fails on the old behaviour: the contract
a team's dbt table needs, the disjointness rule, the reproducibility gate with a team's metric
names, the input schema without a signature, the relative Brier ceiling and the segment gate
judged with the paired bootstrap."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from magenta_release.core import fairness
from magenta_release.core.contract import (
    DataContract,
    arrow_kinds,
    check_columns,
    evaluation_mask,
    frame_kinds,
    key_hashes,
)
from magenta_release.core.errors import BadInput
from magenta_release.core.gates import input_gates, metric_gates, reproducible_gate
from magenta_release.core.policy import Policy, SegmentSection
from magenta_release.core.segments import assess

TEAM = DataContract(
    target="left_within_60d",
    identifiers=("customer_ref",),
    optional_identifiers=("contract_id",),
    categorical=("tariff_*",),
    exclude=("snapshot_*",),
)


def _team_frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_ref": [f"C-{i:06d}" for i in range(rows)],
            "signup_date": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(rows)],
            "tenure_days": rng.integers(1, 900, rows).astype(float),
            "n_case_billing": rng.integers(0, 3, rows),
            "tariff_family": rng.choice(["s", "m", "l"], rows),
            "snapshot_batch": ["b1"] * rows,
            "left_within_60d": (rng.random(rows) < 0.11).astype(int),
        }
    )


# ---- item 8: the contract -------------------------------------------------------------------
def test_dates_are_left_out_with_one_notice_and_exclude_and_patterns_apply() -> None:
    frame = _team_frame()
    cols = check_columns(TEAM, list(frame.columns), "team table", frame_kinds(frame))
    assert cols.numeric == ["tenure_days", "n_case_billing"]
    assert cols.categorical == ["tariff_family"]  # matched by the pattern tariff_*
    assert "snapshot_batch" not in cols.features  # excluded by the pattern snapshot_*
    [notice] = cols.notices
    assert notice.startswith("left out of the features: signup_date (dates and timestamps")
    # before: the date became a feature and validation said "signup_date must be numeric"
    assert "signup_date" not in DataContract(**{**TEAM.model_dump(), "exclude": ()}).columns(
        list(frame.columns), kinds=frame_kinds(frame)
    )


def test_arrow_dates_and_timestamps_are_temporal() -> None:
    schema = pa.schema(
        [("d", pa.date32()), ("t", pa.timestamp("us")), ("n", pa.float64()), ("s", pa.string())]
    )
    assert arrow_kinds(schema) == {"d": "temporal", "t": "temporal"}


def test_a_date_named_as_a_feature_is_refused_with_the_fix() -> None:
    frame = _team_frame()
    contract = DataContract(
        target="left_within_60d",
        identifiers=("customer_ref",),
        features=("signup_date", "tenure_days"),
        categorical=(),
    )
    with pytest.raises(BadInput, match=r"signup_date hold dates or timestamps.*derive a number"):
        check_columns(contract, list(frame.columns), "t", frame_kinds(frame))


def test_an_optional_identifier_may_be_absent_and_is_never_a_feature() -> None:
    frame = _team_frame()
    assert check_columns(TEAM, list(frame.columns), "t", frame_kinds(frame))  # no contract_id
    with_it = frame.assign(contract_id=np.arange(len(frame)))
    cols = check_columns(TEAM, list(with_it.columns), "t", frame_kinds(with_it))
    assert "contract_id" not in cols.features
    assert TEAM.present_identifiers(list(with_it.columns)) == ["customer_ref", "contract_id"]
    with pytest.raises(ValidationError, match="key"):
        DataContract(identifiers=("a",), optional_identifiers=("a",))


def test_a_missing_column_names_the_near_matches() -> None:
    frame = _team_frame().rename(columns={"customer_ref": "customer_reference"})
    with pytest.raises(BadInput) as caught:
        check_columns(TEAM, list(frame.columns), "team table", frame_kinds(frame))
    message = str(caught.value)
    assert "missing contract columns customer_ref (similar columns in the table: " in message
    assert "customer_ref -> customer_reference" in message and "fix [data]" in message


def test_a_pattern_that_matches_nothing_is_named() -> None:
    contract = DataContract(
        target="left_within_60d", identifiers=("customer_ref",), categorical=("plan_*",)
    )
    frame = _team_frame()
    with pytest.raises(BadInput, match="pattern plan_\\* match no column"):
        check_columns(contract, list(frame.columns), "t", frame_kinds(frame))


def test_the_split_salt_draws_other_rows_and_no_salt_is_the_old_rule() -> None:
    frame = pd.DataFrame({"rating_account_id": np.arange(100_000, 120_000)})
    plain = evaluation_mask(frame, DataContract())
    salted = evaluation_mask(frame, DataContract(split_salt="2025-q1"))
    assert abs(salted.mean() - 0.2) < 0.02
    assert 0.1 < (plain & salted).mean() / 0.2 < 0.3  # about independent
    # the unsalted rule is unchanged: runs of earlier releases keep their evaluation rows
    text = frame["rating_account_id"].astype(object).map(str)
    old = pd.util.hash_pandas_object(text, index=False).to_numpy() % 10_000 < 2000
    assert (plain == old).all()
    assert (
        DataContract(split_salt="x").split_rule()["method"] != DataContract().split_rule()["method"]
    )


def test_key_hashes_agree_across_int_float_and_text_keys() -> None:
    ints = pd.DataFrame({"k": [101, 102, 103]})
    assert (key_hashes(ints, "k") == key_hashes(ints.astype({"k": "float64"}), "k")).all()
    assert (key_hashes(ints, "k") == key_hashes(ints.astype({"k": str}), "k")).all()
    assert len(set(key_hashes(ints, "k").tolist())) == 3


# ---- item 1: the disjointness rule ----------------------------------------------------------
Y = np.array([0, 1] * 500)


def _mask(indices: range) -> np.ndarray:
    mask = np.zeros(len(Y), dtype=bool)
    mask[list(indices)] = True
    return mask


def test_disjoint_rows_pass_and_say_against_which_models() -> None:
    found = fairness.judge(
        [
            fairness.Trained("the challenger", _mask(range(0)), "by its split rule"),
            fairness.Trained("champion v1", _mask(range(0)), "by its split rule"),
        ],
        Y,
        "rating_account_id",
        min_rows=500,
    )
    assert found.gate.passed and found.keep is None and found.refused is None
    assert "disjoint from the training rows of the challenger and champion v1" in found.gate.detail


def test_an_overlap_leaves_the_disjoint_rows_when_enough_remain() -> None:
    found = fairness.judge(
        [fairness.Trained("champion v1", _mask(range(300)), "re-read from t.parquet")],
        Y,
        "k",
        min_rows=500,
    )
    assert found.gate.passed and found.keep is not None and int(found.keep.sum()) == 700
    assert found.gate.detail.startswith("300 of 1,000 evaluation rows were training rows")
    assert found.facts["judged_rows"] == 700


def test_an_overlap_with_too_few_rows_left_is_refused_naming_it() -> None:
    found = fairness.judge(
        [
            fairness.Trained("the challenger", _mask(range(0)), ""),
            fairness.Trained("champion v1", _mask(range(800)), ""),
        ],
        Y,
        "k",
        min_rows=500,
    )
    assert not found.gate.passed and found.keep is None
    assert "800 were training rows of champion v1" in found.gate.detail
    assert "200 disjoint rows remain, fewer than min_disjoint_rows = 500" in found.gate.detail
    assert found.refused is not None


def test_unknown_training_rows_are_named_and_fail_only_when_required() -> None:
    unknown = [fairness.Trained("champion v1", None, problem="run abc recorded no training input")]
    lenient = fairness.judge(unknown, Y, "k", min_rows=500)
    assert lenient.gate.passed and "not checked against champion v1 (run abc" in lenient.gate.detail
    strict = fairness.judge(unknown, Y, "k", min_rows=500, require_known=True)
    assert not strict.gate.passed and "required by policy" in strict.gate.detail


# ---- item 3: metrics_reproducible -----------------------------------------------------------
RECOMPUTED = {"roc_auc": 0.81, "pr_auc": 0.3, "brier": 0.09}


def test_nothing_compared_fails_and_names_the_team_metrics() -> None:
    gate = reproducible_gate(Policy(), {"roc_auc_score": 0.81}, RECOMPUTED)
    assert not gate.passed  # before: passed with "0 logged metrics match"
    assert gate.detail.startswith("nothing compared")
    assert 'roc_auc_score = "roc_auc"' in gate.detail and "[gates.metric_names]" in gate.detail
    warn = Policy.model_validate({"gates": {"metrics_reproducible": "warn"}})
    warned = reproducible_gate(warn, {"roc_auc_score": 0.81}, RECOMPUTED)
    assert warned.passed and "reported, not blocking" in warned.detail


def test_a_metric_name_mapping_compares_the_team_metric() -> None:
    policy = Policy.model_validate({"gates": {"metric_names": {"roc_auc_score": "roc_auc"}}})
    ok = reproducible_gate(policy, {"roc_auc_score": 0.81}, RECOMPUTED)
    assert (
        ok.passed
        and ok.detail.startswith("1 logged metrics match")
        and "roc_auc_score" in ok.detail
    )
    off = reproducible_gate(policy, {"roc_auc_score": 0.95}, RECOMPUTED)
    assert not off.passed and "roc_auc_score (as roc_auc) logged 0.9500" in off.detail
    with pytest.raises(ValidationError, match="do not compute"):
        Policy.model_validate({"gates": {"metric_names": {"auc": "rocauc"}}})


# ---- item 5: input_schema without a signature -----------------------------------------------
def test_an_unsigned_challenger_is_compared_by_names_and_observed_kinds() -> None:
    signed = [("tenure_days", "double"), ("brand", "string")]
    unsigned = [("tenure_days", "any"), ("brand", "any")]
    observed = {"tenure_days": "number", "brand": "text"}
    gates = {g.name: g for g in input_gates(Policy(), unsigned, signed, observed)}
    assert gates["input_schema"].passed, gates  # before: "tenure_days: double->any"
    assert "without a signature" in gates["input_schema"].detail
    other = {g.name: g for g in input_gates(Policy(), [("tenure_days", "any")], signed, observed)}
    assert not other["input_schema"].passed and "-brand" in other["input_schema"].detail
    # a real change of kind is still one
    text = {"tenure_days": "text", "brand": "text"}
    changed = {g.name: g for g in input_gates(Policy(), unsigned, signed, text)}
    assert "tenure_days: number->text" in changed["input_schema"].detail


# ---- item 8: a Brier ceiling relative to the base rate --------------------------------------
def test_the_relative_brier_ceiling_scales_with_the_base_rate() -> None:
    policy = Policy.model_validate({"gates": {"max_relative": {"brier": 1.0}, "max": {}}})
    at_11 = {"roc_auc": 0.8, "brier": 0.09, "base_rate": 0.11}  # constant: 0.0979
    at_3 = {"roc_auc": 0.8, "brier": 0.09, "base_rate": 0.03}  # constant: 0.0291
    gate = {g.name: g for g in metric_gates(policy, at_11)}["max_relative_brier"]
    assert gate.passed and "0.0979" in gate.detail
    assert not {g.name: g for g in metric_gates(policy, at_3)}["max_relative_brier"].passed
    with pytest.raises(ValidationError):
        Policy.model_validate({"gates": {"max_relative": {"roc_auc": 1.0}}})


# ---- item 6: segment gates judged with the paired bootstrap ---------------------------------
def _segment_case(
    rows: int, drop_noise: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(int)
    # scores in [0, 1]: the challenger's signal is diluted by more noise
    champion = (y * 0.6 + rng.random(rows) * 0.8) / 1.4
    challenger = (y * 0.6 + rng.random(rows) * (0.8 + drop_noise)) / (1.4 + drop_noise)
    return pd.DataFrame({"band": ["a"] * rows}), y, challenger, champion


def test_a_small_segment_drop_within_noise_is_reported_not_failed() -> None:
    policy = Policy(segments=SegmentSection(columns=("band",), min_rows=50, max_drop=0.02))
    frame, y, ours, theirs = _segment_case(60, 0.3, seed=1)
    gates, evidence = assess(policy, frame, y, ours, theirs, (0.5, 0.5))
    assert evidence is not None
    [segment] = evidence["segments"]
    assert segment["drop"] > 0.02  # the point estimate alone would have failed it
    assert gates[0].passed, gates[0]
    assert (
        "reported, within noise: band=a" in gates[0].detail and "CI of the drop" in gates[0].detail
    )


def test_a_large_segment_significantly_worse_fails() -> None:
    policy = Policy(segments=SegmentSection(columns=("band",), min_rows=50, max_drop=0.02))
    frame, y, ours, theirs = _segment_case(5000, 1.5, seed=2)
    gates, _ = assess(policy, frame, y, ours, theirs, (0.5, 0.5))
    assert not gates[0].passed and gates[0].detail.startswith("band=a: roc_auc")
    assert "significantly exceeded" in gates[0].detail
