"""A champion health check's result, and the MLflow run that records each check in the
experiment `<registered model>-health` (its metrics, the result as JSON and a plot of the
metric and PSI over time). The check itself is `magenta_release.app.health`."""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magenta_release.app.context import Context
from magenta_release.core import keys
from magenta_release.core.drift import SCORE, MetricCheck
from magenta_release.core.policy import HEALTH_SUFFIX
from magenta_release.io import plots


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


def health_experiment(model: str) -> str:
    """Where each check of `model`'s champion is logged as a run."""
    return f"{model}{HEALTH_SUFFIX}"


_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")


def metric_key(name: str) -> str:
    """An MLflow metric name for a column name (`&` and the like are not allowed there)."""
    return _METRIC_KEY.sub("_", name)


def log_run(ctx: Context, result: HealthResult, actor: str) -> str:
    """Log one check as a run in `<model>-health` (its metrics, tags, the result as JSON and
    the plot over time); the run's id."""
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
