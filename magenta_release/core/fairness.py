"""Fair comparisons: the rows the gates judge two models on must be rows neither model was
trained on. A model scores better on rows it has seen (the issue that led here: a champion
scored 0.7869 on rows it was trained on, against its honest 0.7256, and a challenger looked
"significantly worse" next to it).

`judge` is the pure rule: given, for each model, which evaluation rows were among its
training rows (found by the caller from the model's recorded training input, the keys hashed
in memory and never stored), it keeps the disjoint rows when enough remain, else refuses the
comparison, naming the overlap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from magenta_release.core.gates import Gate

GATE = "evaluation_disjoint"
HOW_TO_FIX = (
    "split with the policy's rule (magenta_release.sdk.split, or log_governed_run, which "
    "checks it), or name an out-of-time [data] evaluation_table in the release policy"
)


@dataclass(frozen=True)
class Trained:
    """One model's training rows as seen from the evaluation rows: `overlap` marks the
    evaluation rows that were training rows of the model; None with `problem` when that
    cannot be known (no training input recorded, a source that cannot be re-read)."""

    label: str  # "the challenger", "champion v3"
    overlap: np.ndarray | None
    how: str = ""  # how it was found, for the detail
    problem: str | None = None


@dataclass(frozen=True)
class Fairness:
    gate: Gate
    keep: np.ndarray | None  # the rows every other gate judges (None: all of them)
    refused: str | None  # why the models cannot be compared on these rows
    facts: dict[str, Any] = field(default_factory=dict)


def judge(
    trained: list[Trained],
    y: np.ndarray,
    key: str,
    min_rows: int,
    require_known: bool = False,
) -> Fairness:
    """Keep the evaluation rows that no model was trained on when at least `min_rows` of them
    (with both classes) remain; else refuse. A model whose training rows are unknown is named;
    it fails the gate only when `require_known`."""
    n = len(y)
    known = [t for t in trained if t.overlap is not None]
    unknown = [t for t in trained if t.overlap is None]
    seen = np.zeros(n, dtype=bool)
    counts: dict[str, int] = {}
    for t in known:
        assert t.overlap is not None
        seen |= t.overlap
        counts[t.label] = int(t.overlap.sum())
    facts: dict[str, Any] = {
        "key": key,
        "rows": n,
        "overlap": counts,
        "checked": {t.label: t.how for t in known},
        "unchecked": {t.label: t.problem for t in unknown},
    }
    unchecked = (
        "; not checked against "
        + "; ".join(f"{t.label} ({t.problem})" for t in unknown)
        + (" — required by policy" if require_known else "")
        if unknown
        else ""
    )
    passed_unknown = not (unknown and require_known)
    how = "; ".join(f"{t.label} {t.how}" for t in known if t.how)
    if not seen.any():
        facts["judged_rows"] = n
        who = " and ".join(t.label for t in known)
        detail = (
            f"the {n:,} evaluation rows are disjoint from the training rows of {who}"
            + (f" ({how})" if how else "")
            if known
            else f"the training rows of no model could be checked against the {n:,} rows"
        )
        return Fairness(Gate(GATE, passed_unknown, detail + unchecked), None, None, facts)
    keep = ~seen
    remaining = int(keep.sum())
    facts["judged_rows"] = remaining
    overlapped = "; ".join(
        f"{c:,} were training rows of {label}" for label, c in counts.items() if c
    )
    classes = {int(v) for v in np.unique(y[keep])}
    if remaining >= min_rows and classes == {0, 1}:
        detail = (
            f"{n - remaining:,} of {n:,} evaluation rows were training rows ({overlapped}): "
            f"every gate judges the other {remaining:,} rows, which no model was trained on"
        )
        return Fairness(Gate(GATE, passed_unknown, detail + unchecked), keep, None, facts)
    facts["judged_rows"] = n
    why = (
        f"{n - remaining:,} of {n:,} evaluation rows were training rows ({overlapped}); "
        f"{remaining:,} disjoint rows remain"
        + ("" if classes == {0, 1} else " with one class only")
        + f", fewer than min_disjoint_rows = {min_rows:,}"
    )
    detail = f"{why}: the comparison would favour a model judged on rows it was trained on; " + (
        HOW_TO_FIX
    )
    return Fairness(Gate(GATE, False, detail + unchecked), None, why, facts)
