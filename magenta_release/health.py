"""After release: champion health and shadow scoring (issue 17).

Champion health (`magenta-release health`, the weekly `champion_health` asset):

- takes labelled rows whose label window has closed (`[health] label_window_days` after the
  rows' `date_column`; without a date column every labelled row is used, and the result says
  so);
- re-scores `@champion` on them (its files checked against the SHA-256 manifest first) and
  reports the primary metric with a bootstrap CI, next to the value recorded at release (the
  version's `release.evidence`);
- computes the population stability index (PSI) of the champion's score and of each input
  against the champion's training rows, from binned summaries written at training time
  (`evaluation/training_bins.json`: quantile edges rounded to 4 significant digits, and
  counts; never rows). A run logged by a
  team's own code has none: its evaluation rows are re-read from their source and binned at
  check time, and the result says so;
- logs one MLflow run per check in the experiment `<registered model>-health`, with a plot of
  the metric and PSI over time;
- on a breach of `[health]` thresholds, sends the `health_alert` notification and reports
  the failing features. It never moves an alias: what to do is a person's decision.

PSI = sum over bins of (actual% - expected%) x ln(actual% / expected%), with empty bins
floored at 0.01 % (Yurdakul, "Statistical Properties of Population Stability Index", 2018,
https://scholarworks.wmich.edu/dissertations/3208/), which gives the traditional reading:
< 0.10 little or no change, 0.10-0.25 an intermediate shift, > 0.25 a significant shift that
needs action. The default `max_psi = 0.2` alerts inside the intermediate band, before that.

Shadow scoring (`shadow_score`): when `@challenger` exists, the scoring run also scores it on
the same rows into a separate file, so a proposal's effect on live scores can be shown before
anyone approves it. The challenger is never served: its scores are not predictions.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from magenta_release.errors import BadInput
from magenta_release.policy import HEALTH_SUFFIX

if TYPE_CHECKING:
    import pandas as pd

    from magenta_release.model_files import Verified
    from magenta_release.policy import Policy
    from magenta_release.store import Store, VersionInfo

log = logging.getLogger(__name__)

SUMMARY_PATH = "evaluation/training_bins.json"  # on the training run, beside the curves
SUMMARY_FORMAT = 1
SCORE = "score"  # the champion's score, as named in PSI results
EPSILON = 1e-4  # an empty bin counts as 0.01 %: PSI stays finite
MIN_CATEGORY_ROWS = 10  # rarer categories are summarised as "other": no near-unique values
MAX_CATEGORIES = 30
EDGE_DIGITS = 4  # significant digits of a bin edge
TRAINING_BASELINE = "training-time binned summary (evaluation/training_bins.json)"


# ---- binned summaries and PSI (pure) ------------------------------------------------------
def summarise_column(values: Any, kind: str, bins: int) -> dict[str, Any]:
    """One column's binned summary: quantile edges and counts for numbers, counts of frequent
    values for categories; missing values counted apart. Aggregates only, never rows."""
    import pandas as pd

    series = pd.Series(values)
    missing = int(series.isna().sum())
    present = series.dropna()
    if kind == "categorical":
        counts = present.astype(str).value_counts()
        kept = counts[counts >= MIN_CATEGORY_ROWS].head(MAX_CATEGORIES)
        return {
            "kind": "categorical",
            "categories": [str(c) for c in kept.index],
            "counts": [int(c) for c in kept.to_numpy()],
            "other": int(counts.sum() - kept.sum()),
            "missing": missing,
        }
    numbers = present.astype("float64").to_numpy()
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    # A quantile of a continuous column is one row's exact value: rounded, it is not.
    found = np.quantile(numbers, qs) if len(numbers) else np.array([])
    edges = np.unique(np.array([_rounded(q) for q in found], dtype=float))
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in _numeric_counts(numbers, edges)],
        "missing": missing,
    }


def _rounded(value: float) -> float:
    return float(f"{value:.{EDGE_DIGITS}g}")


def _numeric_counts(numbers: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # bin i holds (edges[i-1], edges[i]]; the first and last bins are open-ended
    index = np.searchsorted(edges, numbers, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def counts_like(summary: dict[str, Any], values: Any) -> tuple[list[int], list[int]]:
    """(expected, actual) counts of `values` in the bins of `summary`, missing and other
    included as their own bins."""
    import pandas as pd

    series = pd.Series(values)
    missing = int(series.isna().sum())
    present = series.dropna()
    if summary["kind"] == "categorical":
        found = present.astype(str).value_counts()
        actual = [int(found.get(c, 0)) for c in summary["categories"]]
        other = int(len(present) - sum(actual))
        return (
            [*summary["counts"], summary["other"], summary["missing"]],
            [*actual, other, missing],
        )
    edges = np.asarray(summary["edges"], dtype=float)
    actual_bins = _numeric_counts(present.astype("float64").to_numpy(), edges)
    return (
        [*summary["counts"], summary["missing"]],
        [*(int(c) for c in actual_bins), missing],
    )


def psi(expected: list[int] | np.ndarray, actual: list[int] | np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.sum() == 0 or a.sum() == 0:
        return float("nan")
    pe = np.maximum(e / e.sum(), EPSILON)
    pa = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def training_summary(
    frame: pd.DataFrame, scores: np.ndarray, categorical: list[str], bins: int = 10
) -> dict[str, Any]:
    """The summary of a model's training rows (its inputs as fitted, and its scores)."""
    cat = set(categorical)
    return {
        "format": SUMMARY_FORMAT,
        "rows": len(frame),
        "bins": bins,
        "columns": {
            str(c): summarise_column(frame[c], "categorical" if c in cat else "numeric", bins)
            for c in frame.columns
        },
        SCORE: summarise_column(scores, "numeric", bins),
    }


def psi_by_column(
    summary: dict[str, Any], frame: pd.DataFrame, scores: np.ndarray
) -> dict[str, float]:
    """PSI of the score and of every summarised column present in `frame`."""
    out = {SCORE: psi(*counts_like(summary[SCORE], scores))}
    for name, column in summary["columns"].items():
        if name in frame.columns:
            out[name] = psi(*counts_like(column, frame[name]))
    return out


# ---- the metric with a bootstrap CI (pure) -------------------------------------------------
def metric_ci(
    y: np.ndarray, scores: np.ndarray, metric: str, threshold: float, rounds: int, confidence: float
) -> tuple[float, float, float]:
    """(value, CI low, CI high) of one metric on these rows; the CI from `rounds` bootstrap
    resamples (NaN when rounds is 0)."""
    from magenta_release.evaluate import REPORTED_METRICS
    from magenta_release.evaluate import metrics as compute
    from magenta_release.gates import bootstrap_intervals

    value = compute(y, scores, threshold)[metric]
    if rounds <= 0:
        return value, float("nan"), float("nan")
    if metric in REPORTED_METRICS:  # the card's O(n)-per-round bootstrap, counts as weights
        nan = (float("nan"), float("nan"))
        low, high = bootstrap_intervals(y, scores, rounds, confidence).get(metric, nan)
        return value, low, high
    rng = np.random.default_rng(0)
    n = len(y)
    found: list[float] = []
    for _ in range(rounds):  # any other metric: recomputed on each resample
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        v = compute(y[idx], scores[idx], threshold)[metric]
        if np.isfinite(v):
            found.append(v)
    if not found:
        return value, float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(found, [tail, 100 - tail])
    return value, float(low), float(high)


# ---- the check ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricCheck:
    name: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    at_release: float | None
    floor: float | None  # the worst acceptable value (a ceiling for lower-is-better metrics)
    lower_is_better: bool
    breached: bool


@dataclass(frozen=True)
class HealthResult:
    """One champion health check."""

    model: str
    version: int
    rows: int
    data: str
    rows_note: str
    metric: MetricCheck
    psi: dict[str, float]
    psi_baseline: str
    max_psi: float
    failing: list[str]  # inputs (and `score`) whose PSI is above max_psi, worst first
    breaches: list[str]
    health_run_id: str = ""
    notified: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.breaches

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["passed"] = self.passed
        return doc


def check(store: Store, data: str, *, by: str | None = None) -> HealthResult:
    """Check `@champion` on the labelled rows of `data` (a source URI), log the check as a run
    in `<model>-health`, and alert on a breach. Never moves an alias."""
    from magenta_release import model_files, notify
    from magenta_release.policy import NotifyEvent
    from magenta_release.predict import resolve

    actor = store.actor(by)
    store.check_residency()
    champion = resolve(store, "champion")  # integrity-checked, approved once
    policy = store.policy
    with tempfile.TemporaryDirectory(prefix="magenta-health-") as tmp:
        verified = model_files.fetch_verified(store, champion, Path(tmp) / "champion")
        frame, y, rows_note, source = labelled_rows(policy, data, verified.all_inputs)
        x = _model_frame(policy, frame, verified)
        scores = model_files.score(verified.model, x)
        metric = _metric(policy, champion, y, scores)
        summary, baseline = _baseline(store, champion, verified, Path(tmp))
    found = psi_by_column(summary, x, scores) if summary else {}
    limit = policy.health.max_psi
    failing = sorted((k for k, v in found.items() if v > limit), key=lambda k: -found[k])
    breaches = []
    if metric.breached:
        breaches.append(_metric_breach(metric))
    if failing:
        shown = ", ".join(f"{k} {found[k]:.2f}" for k in failing)
        breaches.append(f"PSI above {limit:g}: {shown}")
    result = HealthResult(
        model=store.name,
        version=champion.version,
        rows=len(y),
        data=source,
        rows_note=rows_note,
        metric=metric,
        psi=found,
        psi_baseline=baseline,
        max_psi=limit,
        failing=failing,
        breaches=breaches,
    )
    run_id = _log_run(store, result, actor)
    result = _replace(result, health_run_id=run_id)
    if breaches:
        facts = (f"champion health check failed on {len(y):,} labelled rows", *breaches)
        outcome = notify.announce(
            store,
            NotifyEvent.HEALTH_ALERT,
            champion.version,
            actor,
            facts=facts,
            commands=(
                f"magenta-release health --model {store.name} --json",
                f"magenta-release train --model {store.name} --data ... (on recent rows)",
                f"magenta-release rollback --model {store.name} --reason ...",
            ),
        )
        if outcome is None:
            log.warning(
                "champion health breach for %s v%s (no webhook subscribes to health_alert): %s",
                store.name,
                champion.version,
                "; ".join(breaches),
            )
        result = _replace(result, notified=outcome.to_json() if outcome else None)
    return result


def _replace(result: HealthResult, **changes: Any) -> HealthResult:
    from dataclasses import replace

    return replace(result, **changes)


def _metric_breach(m: MetricCheck) -> str:
    level = int(m.confidence * 100)
    where = "above" if m.lower_is_better else "below"
    return (
        f"{m.name} {m.value:.4f} ({level}% CI [{m.ci_low:.4f}, {m.ci_high:.4f}]) is {where} "
        f"{m.floor:.4f}" + (f" (at release {m.at_release:.4f})" if m.at_release is not None else "")
    )


def labelled_rows(
    policy: Policy, data: str, inputs: list[tuple[str, str]]
) -> tuple[pd.DataFrame, np.ndarray, str, str]:
    """The rows to judge the champion on: labelled, and past the label window when the
    policy names a date column. (frame, labels, a note on which rows, source URI)."""
    import pandas as pd

    from magenta_release import contract as dc
    from magenta_release import sources
    from magenta_release.dataset import canonical
    from magenta_release.model_files import NUMERIC_KINDS

    contract, health = policy.data, policy.health
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


def _model_frame(policy: Policy, frame: pd.DataFrame, verified: Verified) -> pd.DataFrame:
    from magenta_release.candidate import model_frame

    return model_frame(frame, verified.all_inputs, "champion", policy.data)


def _metric(
    policy: Policy, champion: VersionInfo, y: np.ndarray, scores: np.ndarray
) -> MetricCheck:
    from magenta_release.evaluate import LOWER_IS_BETTER

    name = policy.gates.primary_metric
    recorded = _recorded_metrics(champion)
    threshold = float(recorded.get("threshold", 0.5))
    value, low, high = metric_ci(
        y,
        scores,
        name,
        threshold,
        policy.gates.bootstrap_rounds,
        policy.gates.bootstrap_confidence,
    )
    at_release = recorded.get(name)
    lower = name in LOWER_IS_BETTER
    h = policy.health
    limits = []
    if at_release is not None:
        limits.append(at_release + h.max_drop if lower else at_release - h.max_drop)
    if h.min_metric is not None:
        limits.append(h.min_metric)
    floor = (min(limits) if lower else max(limits)) if limits else None
    # Judged on the CI's optimistic end: an alert means the drop is beyond sampling noise.
    optimistic = value if np.isnan(low) else (low if lower else high)
    breached = floor is not None and (optimistic > floor if lower else optimistic < floor)
    return MetricCheck(
        name,
        value,
        low,
        high,
        policy.gates.bootstrap_confidence,
        at_release,
        floor,
        lower,
        breached,
    )


def _recorded_metrics(v: VersionInfo) -> dict[str, float]:
    """The metrics the gates recomputed at proposal (the version's `release.evidence`)."""
    try:
        doc = json.loads(v.tags.get("release.evidence", "{}"))
        return {k: float(x) for k, x in doc["evidence"]["metrics"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def _baseline(
    store: Store, champion: VersionInfo, verified: Verified, tmp: Path
) -> tuple[dict[str, Any] | None, str]:
    """The champion's training-time summary; for a run without one (a team's own code), the
    run's evaluation rows re-read from their source and binned now."""
    from magenta_release import candidate, model_files
    from magenta_release.errors import ReleaseError

    if SUMMARY_PATH in store.runs.artifact_paths(champion.run_id, "evaluation", depth=1):
        path = store.runs.download(champion.run_id, SUMMARY_PATH, tmp / "summary")
        summary: dict[str, Any] = json.loads(Path(path).read_text())
        return summary, TRAINING_BASELINE
    try:
        rows = candidate.evaluation_rows(store, store.runs.get_run(champion.run_id))
    except ReleaseError as exc:
        rows = str(exc)
    if isinstance(rows, str):
        return None, f"none: no training summary on run {champion.run_id} and {rows}"
    x = _model_frame(store.policy, rows.frame, verified)
    categorical = [n for n, k in verified.all_inputs if k not in model_files.NUMERIC_KINDS]
    categorical += [c for c in x.columns if x[c].dtype == object and c not in categorical]
    summary = training_summary(
        x, model_files.score(verified.model, x), categorical, store.policy.health.bins
    )
    return summary, (
        f"evaluation rows of run {champion.run_id} re-read from {rows.source} and binned at "
        "check time (the run stored no training summary)"
    )


# ---- the MLflow run per check --------------------------------------------------------------
def health_experiment(store: Store) -> str:
    return f"{store.name}{HEALTH_SUFFIX}"


def _health_store(store: Store) -> Store:
    """The same store, with runs going to `<model>-health` instead of the training experiment."""
    from magenta_release.store import Store

    model = store.policy.model.model_copy(update={"experiment": health_experiment(store)})
    return Store(store.settings, store.policy.model_copy(update={"model": model}), store.client)


_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")


def metric_key(name: str) -> str:
    """An MLflow metric name for a column name (`&` and the like are not allowed there)."""
    return _METRIC_KEY.sub("_", name)


def _log_run(store: Store, result: HealthResult, actor: str) -> str:
    runs = _health_store(store).runs
    history = runs.search_runs(max_results=100)
    m = result.metric
    metrics = {
        m.name: m.value,
        f"{m.name}_ci_low": m.ci_low,
        f"{m.name}_ci_high": m.ci_high,
        "rows": float(result.rows),
        **({f"{m.name}_at_release": m.at_release} if m.at_release is not None else {}),
        **({"psi_score": result.psi[SCORE]} if SCORE in result.psi else {}),
        **({"psi_max": max(result.psi.values())} if result.psi else {}),
        **{f"psi.{metric_key(k)}": v for k, v in result.psi.items() if k != SCORE},
    }
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = runs.create_run(
        f"health-v{result.version}-{stamp}",
        {"mlflow.user": actor, "magenta.health.version": str(result.version)},
    )
    status = "FAILED"
    try:
        runs.log_run_data(
            run_id,
            {
                "model": result.model,
                "version": result.version,
                "data": result.data[:500],
                "rows_note": result.rows_note[:500],
                "psi_baseline": result.psi_baseline[:500],
                "max_psi": result.max_psi,
            },
            metrics,
            {
                "magenta.health.passed": str(result.passed).lower(),
                "magenta.health.failing": ", ".join(result.failing)[:5000],
            },
        )
        with tempfile.TemporaryDirectory(prefix="magenta-health-run-") as tmp:
            folder = Path(tmp)
            (folder / "health.json").write_text(json.dumps(result.to_json(), indent=1))
            over_time(history, result, folder / "over_time.png")
            runs.log_artifacts(run_id, folder, "health")
        status = "FINISHED"
    finally:
        runs.end_run(run_id, status)
    return run_id


def over_time(history: list[Any], result: HealthResult, path: Path) -> None:
    """The primary metric (with its CI and the floor) and PSI per check, oldest first."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    name = result.metric.name
    past = [r for r in history if name in r.metrics]
    past.sort(key=lambda r: r.start_time)
    times = [datetime.fromtimestamp(r.start_time / 1000, UTC) for r in past]
    times.append(datetime.now(UTC))
    values = [r.metrics[name] for r in past] + [result.metric.value]
    lows = [r.metrics.get(f"{name}_ci_low", np.nan) for r in past] + [result.metric.ci_low]
    highs = [r.metrics.get(f"{name}_ci_high", np.nan) for r in past] + [result.metric.ci_high]
    scores = [r.metrics.get("psi_score", np.nan) for r in past] + [result.psi.get(SCORE, np.nan)]
    worst = [r.metrics.get("psi_max", np.nan) for r in past] + [
        max(result.psi.values()) if result.psi else np.nan
    ]
    fig = Figure(figsize=(8, 6))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.fill_between(times, lows, highs, alpha=0.2, label="CI")
    top.plot(times, values, marker="o", label=name)
    if result.metric.floor is not None:
        top.axhline(result.metric.floor, color="red", linestyle="--", label="alert threshold")
    top.set_ylabel(name)
    top.set_title(f"{result.model} champion health (v{result.version} now)")
    top.legend(loc="best")
    bottom.plot(times, scores, marker="o", label="PSI of the score")
    bottom.plot(times, worst, marker="x", label="largest PSI")
    bottom.axhline(result.max_psi, color="red", linestyle="--", label="max_psi")
    bottom.set_ylabel("PSI")
    bottom.legend(loc="best")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)


# ---- shadow scoring ------------------------------------------------------------------------
@dataclass(frozen=True)
class ShadowResult:
    version: int
    rows: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shadow_score(store: Store, input_uri: str, output_path: Path) -> ShadowResult | None:
    """Score `input_uri` with `@challenger` (its files verified) into `output_path`, apart
    from the champion's predictions; None, and no file, when there is no challenger."""
    from magenta_release import lifecycle, model_files, sources
    from magenta_release.model_files import NUMERIC_KINDS
    from magenta_release.predict import input_columns, stream_batches

    lifecycle.check(store)
    challenger = store.registry.alias("challenger")
    if challenger is None or challenger.tags.get("release.passed_gates") != "true":
        output_path.unlink(missing_ok=True)  # no stale shadow of an earlier challenger
        return None
    source = sources.parse(input_uri, "--input")
    with tempfile.TemporaryDirectory(prefix="magenta-shadow-") as tmp:
        verified = model_files.fetch_verified(store, challenger, Path(tmp))
        inputs = verified.all_inputs
        columns = input_columns(store, source, inputs)
        text = tuple(store.policy.data.identifiers) + tuple(
            n for n, kind in inputs if kind not in NUMERIC_KINDS
        )
        rows = stream_batches(
            store,
            verified.model,
            inputs,
            sources.batches(source, columns, text),
            challenger,
            output_path,
        )
    return ShadowResult(challenger.version, rows, str(output_path))


def shadow_difference(
    champion: np.ndarray, challenger: np.ndarray, fraction: float
) -> dict[str, float]:
    """How the challenger would have changed live use: of the top `fraction` to call, how
    many change, and the mean absolute score difference (same rows, same order)."""
    from magenta_release.evaluate import top_fraction_mask

    a, b = top_fraction_mask(champion, fraction), top_fraction_mask(challenger, fraction)
    k = int(a.sum())
    return {
        "campaign_size": float(k),
        "campaign_changed": float(k - int((a & b).sum())),
        "mean_abs_score_diff": float(np.mean(np.abs(champion - challenger))),
    }
