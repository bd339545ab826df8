"""Segments, the segment_regression gate and the disparate-impact check against small tables
worked out by hand; the card's one-sample bootstrap against scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from magenta_release.core.gates import Gate, auc_ranks, bootstrap_intervals, weighted_ap
from magenta_release.core.policy import Policy, SegmentSection
from magenta_release.core.segments import assess, disparate_impact, segments_of

# 12 customers in three age bands of four. At threshold 0.5 the challenger targets 2 of 4 in
# [18,30), 1 of 4 in [30,60) and 4 of 4 in [60,100): rates 0.5, 0.25, 1.0.
AGES = [20, 25, 28, 29, 30, 40, 50, 59, 60, 70, 80, 99]
SCORES = np.array([0.9, 0.6, 0.1, 0.2, 0.7, 0.1, 0.2, 0.3, 0.8, 0.9, 0.6, 0.55])
# The champion targets 1 of 4, 1 of 4 and 1 of 4: rates all 0.25, ratio 1.0.
CHAMPION = np.array([0.9, 0.1, 0.1, 0.2, 0.7, 0.1, 0.2, 0.3, 0.8, 0.1, 0.2, 0.3])
Y = np.array([1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0])


def _policy(**segments: Any) -> Policy:
    base: dict[str, Any] = {
        "bands": {"age": [18, 30, 60, 100]},
        "min_rows": 4,
        "disparate_impact_column": "age",
    }
    return Policy(segments=SegmentSection(**{**base, **segments}))


def test_disparate_impact_by_hand() -> None:
    ratio, low, high = disparate_impact({"a": 0.10, "b": 0.04, "c": 0.08})
    assert ratio == pytest.approx(0.4)  # 0.04 / 0.10
    assert (low, high) == ("b", "a")
    assert disparate_impact({"a": 0.0, "b": 0.0}) == (None, "a", "b")  # nobody targeted
    assert disparate_impact({"a": 0.3})[0] is None  # one group: nothing to compare


def test_disparate_impact_gate_over_age_bands_by_hand() -> None:
    frame = pd.DataFrame({"age": AGES})
    gates, evidence = assess(_policy(), frame, Y, SCORES, CHAMPION, (0.5, 0.5))
    assert evidence is not None
    di = evidence["disparate_impact"]
    assert di["rates"] == {"age=[18,30)": 0.5, "age=[30,60)": 0.25, "age=[60,100)": 1.0}
    assert di["ratio"] == 0.25  # 0.25 / 1.0
    assert di["champion_ratio"] == 1.0  # 0.25 everywhere
    gate = _di(gates)
    assert gate.passed  # below 0.8, but reported only
    assert gate.detail == (
        "targeted rate age=[30,60) 25.0% vs age=[60,100) 100.0%: ratio 0.25 < 0.8 "
        "(four-fifths rule); champion 1.00 (reported, not blocking)"
    )
    blocking = _policy(disparate_impact_blocking=True)
    assert not _di(assess(blocking, frame, Y, SCORES, CHAMPION, (0.5, 0.5))[0]).passed
    # The same table under a looser rule passes even when blocking.
    loose = _policy(disparate_impact_blocking=True, disparate_impact_min=0.25)
    assert _di(assess(loose, frame, Y, SCORES, CHAMPION, (0.5, 0.5))[0]).passed


def _di(gates: list[Gate]) -> Gate:
    return next(g for g in gates if g.name == "disparate_impact")


def test_the_policy_threshold_overrides_each_models_own() -> None:
    frame = pd.DataFrame({"age": AGES})
    # At 0.95 nobody is targeted: no ratio, reported as not computed.
    _, evidence = assess(_policy(decision_threshold=0.95), frame, Y, SCORES, CHAMPION, (0.5, 0.5))
    assert evidence is not None and evidence["disparate_impact"]["ratio"] is None
    assert evidence["thresholds"] == {"challenger": 0.95, "champion": 0.95}


def test_a_segment_that_loses_fails_the_gate_by_name_even_when_overall_is_better() -> None:
    from sklearn.metrics import roc_auc_score

    # Brand A: the challenger ranks it backwards (in the middle of the range); brand B (more
    # rows): perfectly. Overall the challenger is better (32 of 36 pairs ordered right vs 26),
    # on A it loses 1.0 of AUC.
    frame = pd.DataFrame({"brand": ["A"] * 4 + ["B"] * 8})
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    challenger = np.array([0.45, 0.55, 0.46, 0.54, 0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4])
    champion = np.array([0.9, 0.1, 0.8, 0.2, 0.4, 0.6, 0.3, 0.7, 0.9, 0.1, 0.2, 0.8])
    assert roc_auc_score(y, challenger) > roc_auc_score(y, champion)
    policy = Policy(segments=SegmentSection(columns=("brand",), min_rows=4, max_drop=0.1))
    gates, evidence = assess(policy, frame, y, challenger, champion, (0.5, 0.5))
    assert [g.name for g in gates] == ["segment_regression"]  # no disparate-impact column
    assert not gates[0].passed
    assert gates[0].detail.startswith("brand=A: roc_auc 0.0000 vs champion 1.0000 on 4 rows")
    assert "brand=B" not in gates[0].detail
    assert evidence is not None
    b = next(s for s in evidence["segments"] if s["segment"] == "brand=B")
    # champion on B: of 16 churner/non-churner pairs 7 are ordered right
    assert (b["challenger"], b["champion"], b["drop"]) == (1.0, 7 / 16, -(1 - 7 / 16))
    # Below min_rows a segment is reported but not gated.
    few = Policy(segments=SegmentSection(columns=("brand",), min_rows=5, max_drop=0.1))
    assert assess(few, frame, y, challenger, champion, (0.5, 0.5))[0][0].passed


def test_segments_are_cut_by_value_and_band_with_missing_values_kept() -> None:
    frame = pd.DataFrame(
        {"m1": [1.0, 0.0, 1.0, np.nan], "age": [17.0, 30.0, 44.9, np.nan], "x": [0, 0, 0, 0]}
    )
    section = SegmentSection(columns=("m1",), bands={"age": (18, 30, 45)})
    cut = segments_of(frame, section)
    assert not isinstance(cut, str)
    assert {s.label: s.mask.tolist() for s in cut} == {
        "m1=0": [False, True, False, False],
        "m1=1": [True, False, True, False],
        "m1=missing": [False, False, False, True],
        "age=[18,30)": [False, False, False, False],
        "age=[30,45)": [False, True, True, False],
        "age=outside bands": [True, False, False, False],
        "age=missing": [False, False, False, True],
    }


def test_a_missing_column_or_an_identifier_like_column_is_a_message_not_a_crash() -> None:
    frame = pd.DataFrame({"age": [20, 30], "customer": [f"c{i}" for i in range(2)]})
    missing = SegmentSection(columns=("brand", "plan"), bands={"age": (0, 100)})
    assert segments_of(frame, missing) == (
        "segment columns brand, plan not in the evaluation rows; name columns of the "
        "evaluation table under [segments] in the release policy"
    )
    wide = pd.DataFrame({"customer": [f"c{i}" for i in range(60)]})
    message = segments_of(wide, SegmentSection(columns=("customer",)))
    assert isinstance(message, str) and "60 distinct values" in message
    gates, evidence = assess(
        Policy(segments=missing), frame, np.array([0, 1]), np.array([0.1, 0.2]), None, (0.5, None)
    )
    assert [(g.name, g.passed) for g in gates] == [("segment_regression", False)]
    assert evidence == {"error": segments_of(frame, missing)}


def test_no_segments_section_means_no_segment_gates() -> None:
    frame = pd.DataFrame({"age": AGES})
    assert assess(Policy(), frame, Y, SCORES, CHAMPION, (0.5, 0.5)) == ([], None)


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"bands": {"age": [30, 0]}}, "strictly increasing"),
        ({"bands": {"age": [0, float("nan"), 200]}}, "finite"),  # NaN switched fairness off
        ({"bands": {"age": [30]}}, "at least two"),
        ({}, "at least one segment column"),
        ({"columns": ["a"], "bands": {"a": [0, 1]}}, "both in `columns` and in `bands`"),
        ({"columns": ["a"], "disparate_impact_column": "age"}, "must be one of the segment"),
        ({"columns": ["a"], "min_row": 10}, "extra inputs are not permitted"),
    ],
)
def test_a_bad_segments_section_is_refused(section: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match="segments") as info:
        Policy.model_validate({"segments": section})
    assert fragment in str(info.value).lower() or fragment in str(info.value)


def test_weighted_average_precision_equals_scikit_learn_on_a_resample() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from magenta_release.core.gates import weighted_auc

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.1).astype(int)
    scores = np.round(rng.random(500) * 0.5 + y * 0.2, 2)  # with ties
    w = np.bincount(rng.integers(0, 500, 500), minlength=500).astype(float)
    rows = np.repeat(np.arange(500), w.astype(int))
    prep = auc_ranks(scores)
    assert weighted_ap(y, w, *prep) == pytest.approx(average_precision_score(y[rows], scores[rows]))
    assert weighted_auc(y, w, *prep) == pytest.approx(roc_auc_score(y[rows], scores[rows]))


def test_bootstrap_intervals_surround_the_point_estimates() -> None:
    from magenta_release.core.metrics import REPORTED_METRICS, metrics

    rng = np.random.default_rng(5)
    y = (rng.random(2000) < 0.05).astype(int)
    scores = np.clip(rng.random(2000) * 0.3 + y * 0.15, 0, 1)
    point = metrics(y, scores, 0.5)
    cis = bootstrap_intervals(y, scores, 300, 0.9)
    assert set(cis) == set(REPORTED_METRICS)
    for name, (low, high) in cis.items():
        assert low < point[name] < high, (name, low, point[name], high)
    assert bootstrap_intervals(y, scores, 0, 0.9) == {}


def test_a_segment_label_from_the_data_carries_no_control_characters() -> None:
    frame = pd.DataFrame({"brand": ["\x1b[2JEvil", "iPhone"]})
    cut = segments_of(frame, SegmentSection(columns=("brand",)))
    assert not isinstance(cut, str)
    assert sorted(s.label for s in cut) == ["brand=?[2JEvil", "brand=iPhone"]


def test_a_thresholded_segment_metric_is_scored_at_each_models_own_threshold() -> None:
    """A thresholded primary metric on a segment is scored at each model's decision threshold
    (`threshold_of` its run, as the regression gates and the reports score it), never at a
    fixed 0.5. Worked by hand: of the 6 churners the challenger scores 3 at or above 0.65
    (4 at or above 0.5); the champion scores all 6 at or above 0.15 (3 at or above 0.5)."""
    from magenta_release.core.metrics import metrics

    policy = Policy.model_validate(
        {
            "gates": {"primary_metric": "recall_at_threshold"},
            "segments": {"bands": {"age": [18, 100]}, "min_rows": 4},
        }
    )
    _, evidence = assess(policy, pd.DataFrame({"age": AGES}), Y, SCORES, CHAMPION, (0.65, 0.15))
    assert evidence is not None
    (row,) = evidence["segments"]
    assert (row["challenger"], row["champion"]) == (3 / 6, 6 / 6)
    # the positive control: at 0.5 both read otherwise, so a fixed 0.5 would fail the line above
    assert metrics(Y, SCORES, 0.5)["recall_at_threshold"] == 4 / 6
    assert metrics(Y, CHAMPION, 0.5)["recall_at_threshold"] == 3 / 6
    # the drop's CI comes from the same thresholds: the challenger's recall is 0.5 lower
    assert row["gain_low"] <= -0.5 / 2 and row["gain_high"] <= 0
