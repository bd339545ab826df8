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
  the metric and PSI over time (`app/services/health_runs.py`; the rows are chosen by
  `app/services/labelled_rows.py`);
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
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from magenta_release.app.context import Context
from magenta_release.app.services import candidate, lifecycle, models, notify, scoring
from magenta_release.app.services.health_runs import HealthResult, log_run
from magenta_release.app.services.labelled_rows import labelled_rows
from magenta_release.core import keys
from magenta_release.core.drift import (
    SUMMARY_PATH,
    TRAINING_BASELINE,
    MetricCheck,
    metric_ci,
    psi_by_column,
    training_summary,
)
from magenta_release.core.errors import ReleaseError
from magenta_release.core.evidence import Evidence
from magenta_release.core.metrics import LOWER_IS_BETTER, threshold_of
from magenta_release.core.policy import NotifyEvent
from magenta_release.core.records import VersionInfo
from magenta_release.io import model_files
from magenta_release.io.model_files import NUMERIC_KINDS

if TYPE_CHECKING:
    import pandas as pd

    from magenta_release.core.policy import Policy
    from magenta_release.io.model_files import Verified

log = logging.getLogger(__name__)


# ---- the check ----------------------------------------------------------------------------
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
    run_id = log_run(ctx, result, actor)
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
