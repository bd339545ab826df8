"""Segments and fairness (`[segments]` in the policy): the primary metric and the targeted
rate of both models on each customer segment of the same evaluation rows, the
`segment_regression` gate and the `disparate_impact` check. Pure functions of rows, labels
and scores.

Why per segment: an overall gain can hide a loss on one group (a model that is worse on
Samsung customers but better overall passes every aggregate gate). Why the four-fifths rule:
it is the usual screening threshold for adverse impact (a selection rate below 80 % of the
highest group's), here applied to who a churn campaign would target."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from magenta_release.core.gates import Gate
from magenta_release.core.metrics import LOWER_IS_BETTER
from magenta_release.core.policy import MAX_SEGMENT_VALUES, Policy, SegmentSection

if TYPE_CHECKING:
    import pandas as pd

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Segment:
    """One segment: `column=value` (or `column=[low,high)`), and which rows belong to it."""

    column: str
    label: str
    mask: np.ndarray


@dataclass(frozen=True)
class SegmentResult:
    """Both models on one segment. Metrics are None where undefined (one class only)."""

    column: str
    segment: str
    rows: int
    positives: int
    metric: str
    challenger: float | None
    champion: float | None
    challenger_rate: float  # share of rows at or above the challenger's threshold
    champion_rate: float | None
    gated: bool  # enough rows (policy min_rows) and the metric is defined for both
    # paired bootstrap CI of the challenger's gain over the champion on the segment's rows
    # (negative: worse), for gated segments; None without a champion or bootstrap rounds
    gain_low: float | None = None
    gain_high: float | None = None

    def significantly_worse(self, allowed: float) -> bool:
        """Worse by more than `allowed` beyond sampling noise: even the optimistic end of the
        CI of the gain is a drop larger than allowed (the point estimate when there is no CI)."""
        if self.gain_high is None or math.isnan(self.gain_high):
            return (self.drop or 0.0) > allowed
        return self.gain_high < -allowed

    @property
    def drop(self) -> float | None:
        """How much worse the challenger is (positive: worse), direction-aware."""
        if self.challenger is None or self.champion is None:
            return None
        diff = self.challenger - self.champion
        return diff if self.metric in LOWER_IS_BETTER else -diff

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "drop": self.drop}


def _value_label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    # A label comes from the data and ends up in gate details and terminals: no control
    # characters (an ANSI escape in a brand name must not repaint an approver's screen).
    return _CONTROL.sub("?", str(value))


def _edge(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def segments_of(frame: pd.DataFrame, section: SegmentSection) -> list[Segment] | str:
    """The segments of the evaluation rows, or why they cannot be cut (a column missing, too
    many distinct values, a banded column that is not numeric), in words that name the fix."""
    import pandas as pd

    named = [*section.columns, *section.bands]
    missing = [c for c in named if c not in frame.columns]
    if missing:
        return (
            f"segment column{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the "
            f"evaluation rows; name columns of the evaluation table under [segments] in the "
            "release policy"
        )
    found: list[Segment] = []
    for column in section.columns:
        values = frame[column]
        distinct = values.drop_duplicates()
        if len(distinct) > MAX_SEGMENT_VALUES:
            return (
                f"segment column {column} has {len(distinct):,} distinct values (at most "
                f"{MAX_SEGMENT_VALUES}); cut a numeric column into `bands` instead"
            )
        labels = values.map(_value_label).to_numpy(dtype=object)
        for label in sorted(set(labels)):
            found.append(Segment(column, f"{column}={label}", labels == label))
    for column, edges in section.bands.items():
        try:
            numbers = pd.to_numeric(frame[column]).to_numpy(dtype=float)
        except (TypeError, ValueError):
            return f"banded segment column {column} is not numeric; list it under `columns`"
        for low, high in pairwise(edges):
            mask = (numbers >= low) & (numbers < high)
            found.append(Segment(column, f"{column}=[{_edge(low)},{_edge(high)})", mask))
        outside = ~np.isnan(numbers) & ((numbers < edges[0]) | (numbers >= edges[-1]))
        if outside.any():
            found.append(Segment(column, f"{column}=outside bands", outside))
        if np.isnan(numbers).any():
            found.append(Segment(column, f"{column}=missing", np.isnan(numbers)))
    return found


def _metric(name: str, y: np.ndarray, scores: np.ndarray, threshold: float) -> float | None:
    """`name` on a segment's rows, a thresholded metric at the model's decision threshold
    (the one its targeted rate is measured at)."""
    from magenta_release.core.metrics import metrics

    if len(y) == 0 or y.min() == y.max():
        return None  # a ranking metric needs both classes
    value = metrics(y, scores, threshold).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def measure(
    segments: list[Segment],
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    thresholds: tuple[float, float | None],
    metric: str,
    min_rows: int,
    bootstrap: tuple[int, float] = (0, 0.95),
) -> list[SegmentResult]:
    """Both models on each segment: the metric and the share of rows each model targets; on
    gated segments, the paired bootstrap CI of the challenger's gain (`bootstrap`: rounds and
    confidence; the same resamples of the segment's rows for both models). `thresholds`: the
    challenger's and the champion's decision thresholds (`DEFAULT_THRESHOLD` for a champion
    given none); a thresholded metric is scored at them, as the gates and reports do."""
    from magenta_release.core.gates import paired_bootstrap
    from magenta_release.core.metrics import DEFAULT_THRESHOLD

    rounds, confidence = bootstrap
    at = (thresholds[0], DEFAULT_THRESHOLD if thresholds[1] is None else thresholds[1])
    results = []
    for s in segments:
        yy, ours = y[s.mask], challenger[s.mask]
        theirs = None if champion is None else champion[s.mask]
        a = _metric(metric, yy, ours, at[0])
        b = None if theirs is None else _metric(metric, yy, theirs, at[1])
        rows = int(s.mask.sum())
        gated = rows >= min_rows and a is not None and b is not None
        low = high = None
        if gated and theirs is not None and rounds > 0:
            low, high, _ = paired_bootstrap(yy, ours, theirs, metric, rounds, confidence, 0, at)
        results.append(
            SegmentResult(
                column=s.column,
                segment=s.label,
                rows=rows,
                positives=int(yy.sum()),
                metric=metric,
                challenger=a,
                champion=b,
                challenger_rate=float((ours >= thresholds[0]).mean()) if rows else 0.0,
                champion_rate=None
                if theirs is None or thresholds[1] is None or not rows
                else float((theirs >= thresholds[1]).mean()),
                gated=gated,
                gain_low=low,
                gain_high=high,
            )
        )
    return results


def _ci(r: SegmentResult) -> str:
    if r.gain_low is None or r.gain_high is None or math.isnan(r.gain_low):
        return ""
    # the CI of the drop is the CI of the gain, negated
    return f", CI of the drop [{-r.gain_high:+.4f}, {-r.gain_low:+.4f}]"


def regression_gate(
    results: list[SegmentResult], section: SegmentSection, has_champion: bool
) -> Gate:
    """Fails when a segment with enough rows is significantly worse than the champion on its
    rows by more than `max_drop` (the paired bootstrap CI of the drop lies beyond it: a point
    estimate on a small segment is not evidence), naming each such segment; a larger drop
    that is within noise is reported, not gated."""
    if not has_champion:
        return Gate("segment_regression", True, "no champion yet: nothing to regress against")
    gated = [r for r in results if r.gated]
    small = len(results) - len(gated)
    tail = f"; {small} segments below {section.min_rows:,} rows (or with one class) not gated"
    if not gated:
        return Gate(
            "segment_regression",
            True,
            f"no segment has {section.min_rows:,} rows with both classes: nothing gated"
            f" ({len(results)} segments reported on the card)",
        )
    allowed = section.max_drop

    def named(rs: list[SegmentResult]) -> str:
        return "; ".join(
            f"{r.segment}: {r.metric} {r.challenger:.4f} vs champion {r.champion:.4f} on "
            f"{r.rows:,} rows (drop {r.drop:.4f}{_ci(r)})"
            for r in sorted(rs, key=lambda r: -(r.drop or 0.0))
        )

    worse = [r for r in gated if r.significantly_worse(allowed)]
    noisy = [r for r in gated if (r.drop or 0.0) > allowed and r not in worse]
    within = f"; reported, within noise: {named(noisy)}" if noisy else ""
    if worse:
        return Gate(
            "segment_regression",
            False,
            f"{named(worse)}; allowed drop {allowed} per segment, significantly exceeded"
            + within
            + tail,
        )
    top = max(gated, key=lambda r: r.drop or 0.0)
    drop = top.drop or 0.0
    return Gate(
        "segment_regression",
        True,
        f"{len(gated)} segments with >= {section.min_rows:,} rows, none significantly worse "
        f"by more than {allowed} ({'largest drop' if drop > 0 else 'smallest gain'} "
        f"{abs(drop):.4f} on {top.segment}{_ci(top)})" + within + (tail if small else ""),
    )


def disparate_impact(rates: dict[str, float]) -> tuple[float | None, str, str]:
    """Ratio of the lowest to the highest targeted rate, with the two segments; None when no
    segment is targeted at all (no disparity to measure) or fewer than two segments."""
    if len(rates) < 2:
        return None, "", ""
    low = min(rates, key=lambda k: (rates[k], k))
    high = max(rates, key=lambda k: (rates[k], k))
    if rates[high] <= 0:
        return None, low, high
    return rates[low] / rates[high], low, high


def disparate_impact_gate(
    results: list[SegmentResult], section: SegmentSection
) -> tuple[Gate, dict[str, Any]]:
    """The four-fifths check over the segments of `disparate_impact_column` that have at
    least `min_rows` rows; blocking only when the policy says so."""
    column = section.disparate_impact_column
    blocking = section.disparate_impact_blocking
    note = "" if blocking else " (reported, not blocking)"
    counted = [r for r in results if r.column == column and r.rows >= section.min_rows]
    rates = {r.segment: r.challenger_rate for r in counted}
    ratio, low, high = disparate_impact(rates)
    theirs = {r.segment: r.champion_rate for r in counted if r.champion_rate is not None}
    champion_ratio = disparate_impact(theirs)[0] if len(theirs) == len(rates) else None
    evidence = {
        "column": column,
        "rates": rates,
        "ratio": ratio,
        "champion_ratio": champion_ratio,
        "min_ratio": section.disparate_impact_min,
        "blocking": blocking,
    }
    if ratio is None:
        why = (
            f"fewer than two {column} segments with >= {section.min_rows:,} rows"
            if len(rates) < 2
            else "no segment targeted at the decision threshold"
        )
        return Gate("disparate_impact", True, f"not computed: {why}{note}"), evidence
    ok = ratio >= section.disparate_impact_min
    detail = (
        f"targeted rate {low} {rates[low]:.1%} vs {high} {rates[high]:.1%}: ratio {ratio:.2f} "
        f"{'>=' if ok else '<'} {section.disparate_impact_min} (four-fifths rule)"
        + ("" if champion_ratio is None else f"; champion {champion_ratio:.2f}")
        + note
    )
    return Gate("disparate_impact", ok or not blocking, detail), evidence


def assess(
    policy: Policy,
    frame: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray | None,
    thresholds: tuple[float, float | None],
) -> tuple[list[Gate], dict[str, Any] | None]:
    """The segment gates and their evidence; no gates at all without `[segments]`.
    `thresholds`: the challenger's and the champion's decision thresholds (the policy's
    `decision_threshold` overrides both)."""
    section = policy.segments
    if section is None:
        return [], None
    if section.decision_threshold is not None:
        thresholds = (section.decision_threshold, section.decision_threshold)
    cut = segments_of(frame, section)
    if isinstance(cut, str):
        gates = [Gate("segment_regression", False, f"cannot cut segments: {cut}")]
        if section.disparate_impact_column is not None:
            gates.append(Gate("disparate_impact", False, f"cannot cut segments: {cut}"))
        return gates, {"error": cut}
    metric = policy.gates.primary_metric
    g = policy.gates
    results = measure(
        cut,
        y,
        challenger,
        champion,
        thresholds,
        metric,
        section.min_rows,
        (g.bootstrap_rounds, g.bootstrap_confidence),
    )
    gates = [regression_gate(results, section, champion is not None)]
    evidence: dict[str, Any] = {
        "metric": metric,
        "min_rows": section.min_rows,
        "max_drop": section.max_drop,
        "thresholds": {"challenger": thresholds[0], "champion": thresholds[1]},
        "segments": [r.to_json() for r in results],
    }
    if section.disparate_impact_column is not None:
        gate, evidence["disparate_impact"] = disparate_impact_gate(results, section)
        gates.append(gate)
    return gates, evidence
