"""The labelled rows a champion health check judges on: those whose label window has closed
(`[health] label_window_days` after the rows' `date_column`, looking back `lookback_days`), or
every labelled row when the policy names no date column (and the note says so)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from magenta_release.core.errors import BadInput
from magenta_release.io.model_files import NUMERIC_KINDS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from magenta_release.core.policy import Policy


def labelled_rows(
    policy: Policy, data: str, inputs: list[tuple[str, str]]
) -> tuple[pd.DataFrame, np.ndarray, str, str]:
    """The rows to judge the champion on: labelled, and past the label window when the
    policy names a date column. (frame, labels, a note on which rows, source URI)."""
    import pandas as pd

    from magenta_release.core import contract as dc
    from magenta_release.io import sources
    from magenta_release.io.datasets import canonical

    contract, health = policy.data, policy.health
    sources.require_protocol(data, policy.residency.allowed_source_protocols, "--data")
    source = canonical(data, "--data")
    names = list(sources.schema(source).names)
    wanted = [*contract.identifiers, *(n for n, _ in inputs), contract.target]
    if health.date_column:
        wanted.append(health.date_column)
    missing = [c for c in dict.fromkeys(wanted) if c not in names]
    if missing:
        raise BadInput(
            f"{source.label}: missing columns {', '.join(missing)} (the champion's inputs, "
            "identifiers, target and [health] date_column); point --data at the labelled table"
        )
    text = tuple(contract.identifiers) + tuple(n for n, k in inputs if k not in NUMERIC_KINDS)
    frame = dc.to_frame(sources.read(source, list(dict.fromkeys(wanted)), text_columns=text))
    total = len(frame)
    frame = frame[frame[contract.target].notna()]
    if health.date_column:
        frame, note = _closed_window(frame, health.date_column, health, source.label)
    else:
        note = (
            f"no date column ([health] date_column unset): all {len(frame):,} labelled rows of "
            f"{total:,} used; the label window of {health.label_window_days} days is not applied"
        )
    if len(frame) < health.min_rows:
        raise BadInput(
            f"{source.label}: {len(frame):,} labelled rows ({note}); at least "
            f"{health.min_rows} are needed to judge the champion ([health] min_rows)"
        )
    numeric = [n for n, k in inputs if k in NUMERIC_KINDS or k == "any"]
    numeric = [n for n in numeric if pd.api.types.is_numeric_dtype(frame[n])] if numeric else []
    cols = dc.Columns(numeric, [n for n, _ in inputs if n not in numeric])
    dc.validate(frame, contract, cols, source.label)
    y = dc.target(frame, contract)
    if len(set(y.tolist())) < 2:
        raise BadInput(
            f"{source.label}: the labelled rows hold one class only; the metric needs churners "
            "and non-churners (more rows, or a longer lookback)"
        )
    return frame.reset_index(drop=True), y, note, source.uri


def _closed_window(
    frame: pd.DataFrame, column: str, health: Any, label: str
) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    try:
        dates = pd.to_datetime(frame[column], utc=True)
    except (ValueError, TypeError) as exc:
        raise BadInput(
            f"{label}: [health] date_column {column} does not hold dates ({exc}); fix the column "
            "or the policy"
        ) from exc
    closed = pd.Timestamp(datetime.now(UTC) - timedelta(days=health.label_window_days))
    since = closed - pd.Timedelta(days=health.lookback_days)
    keep = (dates <= closed) & (dates > since)
    note = (
        f"{int(keep.sum()):,} rows dated {since.date()} to {closed.date()} (label window "
        f"{health.label_window_days} days closed; {health.lookback_days} days looked back)"
    )
    return frame[keep.to_numpy()], note
