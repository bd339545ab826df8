"""After release: champion health and shadow scoring (docs/release-process.md).

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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from magenta_release.app.context import Context
from magenta_release.app.services import candidate, lifecycle, models, notify, scoring
from magenta_release.core import keys
from magenta_release.core.drift import (
    SCORE,
    SUMMARY_PATH,
    TRAINING_BASELINE,
    MetricCheck,
    metric_ci,
    psi_by_column,
    training_summary,
)
from magenta_release.core.errors import BadInput, ReleaseError
from magenta_release.core.evidence import Evidence
from magenta_release.core.metrics import LOWER_IS_BETTER, threshold_of
from magenta_release.core.policy import HEALTH_SUFFIX, NotifyEvent
from magenta_release.core.records import VersionInfo
from magenta_release.io import model_files, plots
from magenta_release.io.model_files import NUMERIC_KINDS

if TYPE_CHECKING:
    import pandas as pd

    from magenta_release.core.policy import Policy
    from magenta_release.io.model_files import Verified

log = logging.getLogger(__name__)


# ---- the check ----------------------------------------------------------------------------
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
    # rows per categorical input holding a level the champion never saw in training
    unseen_levels: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.breaches

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["passed"] = self.passed
        return doc


def check(ctx: Context, data: str) -> HealthResult:
    """Check `@champion` on the labelled rows of `data` (a source URI), log the check as a run
    in `<model>-health`, and alert on a breach. Never moves an alias."""
    actor = ctx.actor
    ctx.check_residency()
    champion = models.resolve(ctx, "champion")  # integrity-checked, approved once
    policy = ctx.policy
    with tempfile.TemporaryDirectory(prefix="magenta-health-") as tmp:
        verified = models.fetch(ctx, champion, Path(tmp) / "champion")
        frame, y, rows_note, source = labelled_rows(policy, data, verified.all_inputs)
        x = _model_frame(policy, frame, verified)
        scores = model_files.score(verified.model, x)
        metric = _metric(policy, champion, y, scores)
        unseen = scoring.unseen_levels(frame, scoring.known_levels(verified.model))
        summary, baseline = _baseline(ctx, champion, verified, Path(tmp))
    found = psi_by_column(summary, x, scores) if summary else {}
    limit = policy.health.max_psi
    failing = sorted((k for k, v in found.items() if v > limit), key=lambda k: -found[k])
    breaches = []
    if metric.breached:
        breaches.append(_metric_breach(metric))
    if failing:
        shown = ", ".join(f"{k} {found[k]:.2f}" for k in failing)
        breaches.append(f"PSI above {limit:g}: {shown}")
    share = policy.health.max_unseen_share
    new_levels = {c: n for c, n in unseen.items() if n > share * len(y)}
    if new_levels:
        shown = ", ".join(f"{c} {n:,} rows ({n / len(y):.1%})" for c, n in new_levels.items())
        breaches.append(
            f"categorical levels the champion never saw in training: {shown}; it scores them "
            "as it treats an unknown level (retrain on data that has them)"
        )
    result = HealthResult(
        model=ctx.model,
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
        unseen_levels=unseen,
    )
    run_id = _log_run(ctx, result, actor)
    result = replace(result, health_run_id=run_id)
    if breaches:
        facts = (f"champion health check failed on {len(y):,} labelled rows", *breaches)
        outcome = notify.announce(
            ctx,
            NotifyEvent.HEALTH_ALERT,
            champion.version,
            actor,
            facts=facts,
            commands=(
                f"magenta-release health --model {ctx.model} --json",
                f"magenta-release train --model {ctx.model} --data ... (on recent rows)",
                f"magenta-release rollback --model {ctx.model} --reason ...",
            ),
        )
        if outcome is None:
            log.warning(
                "champion health breach for %s v%s (no webhook subscribes to health_alert): %s",
                ctx.model,
                champion.version,
                "; ".join(breaches),
            )
        result = replace(result, notified=outcome.to_json() if outcome else None)
    return result


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


def _model_frame(policy: Policy, frame: pd.DataFrame, verified: Verified) -> pd.DataFrame:
    return candidate.model_frame(frame, verified.all_inputs, "champion", policy.data)


def _metric(
    policy: Policy, champion: VersionInfo, y: np.ndarray, scores: np.ndarray
) -> MetricCheck:
    name = policy.gates.primary_metric
    recorded = Evidence.of(champion).metrics
    threshold = threshold_of(recorded)
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


def _baseline(
    ctx: Context, champion: VersionInfo, verified: Verified, tmp: Path
) -> tuple[dict[str, Any] | None, str]:
    """The champion's training-time summary; for a run without one (a team's own code), the
    run's evaluation rows re-read from their source and binned now."""
    runs = ctx.runs
    if SUMMARY_PATH in runs.artifact_paths(champion.run_id, "evaluation", depth=1):
        path = runs.download(champion.run_id, SUMMARY_PATH, tmp / "summary")
        summary: dict[str, Any] = json.loads(Path(path).read_text())
        return summary, TRAINING_BASELINE
    try:
        rows = candidate.evaluation_rows(
            ctx.policy.data,
            runs.get_run(champion.run_id),
            ctx.policy.residency.allowed_source_protocols,
        )
    except ReleaseError as exc:
        rows = str(exc)
    if isinstance(rows, str):
        return None, f"none: no training summary on run {champion.run_id} and {rows}"
    x = _model_frame(ctx.policy, rows.frame, verified)
    categorical = [n for n, k in verified.all_inputs if k not in NUMERIC_KINDS]
    categorical += [c for c in x.columns if x[c].dtype == object and c not in categorical]
    summary = training_summary(
        x, model_files.score(verified.model, x), categorical, ctx.policy.health.bins
    )
    return summary, (
        f"evaluation rows of run {champion.run_id} re-read from {rows.source} and binned at "
        "check time (the run stored no training summary)"
    )


# ---- the MLflow run per check --------------------------------------------------------------
def health_experiment(model: str) -> str:
    """Where each check of `model`'s champion is logged as a run."""
    return f"{model}{HEALTH_SUFFIX}"


_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")


def metric_key(name: str) -> str:
    """An MLflow metric name for a column name (`&` and the like are not allowed there)."""
    return _METRIC_KEY.sub("_", name)


def _log_run(ctx: Context, result: HealthResult, actor: str) -> str:
    runs = ctx.store.runs(health_experiment(ctx.model))
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
        **{f"unseen_rows.{metric_key(k)}": float(v) for k, v in result.unseen_levels.items()},
    }
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = runs.create_run(
        f"health-v{result.version}-{stamp}",
        {"mlflow.user": actor, keys.HEALTH_VERSION: str(result.version)},
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
                keys.HEALTH_PASSED: str(result.passed).lower(),
                keys.HEALTH_FAILING: ", ".join(result.failing)[:5000],
            },
        )
        with tempfile.TemporaryDirectory(prefix="magenta-health-run-") as tmp:
            folder = Path(tmp)
            (folder / "health.json").write_text(json.dumps(result.to_json(), indent=1))
            plots.over_time(
                history,
                result.metric,
                result.psi.get(SCORE, np.nan),
                max(result.psi.values()) if result.psi else np.nan,
                (result.model, result.version, result.max_psi),
                folder / "over_time.png",
            )
            runs.log_artifacts(run_id, folder, "health")
        status = "FINISHED"
    finally:
        runs.end_run(run_id, status)
    return run_id


# ---- shadow scoring ------------------------------------------------------------------------
@dataclass(frozen=True)
class ShadowResult:
    version: int
    rows: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shadow_score(ctx: Context, input_uri: str, output_path: Path) -> ShadowResult | None:
    """Score `input_uri` with `@challenger` (its files verified) into `output_path`, apart
    from the champion's predictions; None, and no file, when there is no challenger."""
    from magenta_release.io import sources

    lifecycle.check(ctx)
    challenger = ctx.registry.alias("challenger")
    if challenger is None or challenger.tags.get(keys.PASSED_GATES) != "true":
        output_path.unlink(missing_ok=True)  # no stale shadow of an earlier challenger
        return None
    sources.require_protocol(input_uri, ctx.policy.residency.allowed_source_protocols, "--input")
    source = sources.parse(input_uri, "--input")
    with tempfile.TemporaryDirectory(prefix="magenta-shadow-") as tmp:
        verified = models.fetch(ctx, challenger, Path(tmp))
        inputs = verified.all_inputs
        identifiers = ctx.policy.data.all_identifiers
        columns = scoring.input_columns(identifiers, source, inputs)
        text = identifiers + tuple(n for n, kind in inputs if kind not in NUMERIC_KINDS)
        rows = scoring.stream_batches(
            identifiers,
            ctx.model,
            verified.model,
            inputs,
            sources.batches(source, columns, text),
            challenger,
            output_path,
        )
    return ShadowResult(challenger.version, rows, str(output_path))
