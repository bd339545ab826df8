"""`runs` and `compare`: side-by-side training results, fast with many runs."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import candidate, models
from magenta_release.core import keys
from magenta_release.core import metrics as evaluate
from magenta_release.core.errors import BadInput, ReleaseError
from magenta_release.core.limits import MAX_RUNS
from magenta_release.core.metrics import LOWER_IS_BETTER, REPORTED_METRICS
from magenta_release.core.records import RunInfo
from magenta_release.io import model_files, plots


@dataclass(frozen=True)
class Comparison:
    runs: list[RunInfo]
    metric: str
    champion: dict[str, Any] | None  # {"version": int, "run_id": str, "metrics": {...}}
    differing_params: list[str]
    best: dict[str, str]  # metric -> run_id of the best run
    # run_id -> the champion's metrics re-scored on that run's own evaluation rows
    rescored: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def comparable(self) -> bool:
        """True when every run, and the champion, were evaluated on the same rows."""
        return len(self._evaluations()) <= 1

    def _evaluations(self) -> set[str]:
        digests = {_eval_key(r.tags) for r in self.runs}
        if self.champion:
            digests.add(str(self.champion["eval_digest"]))
        return digests

    def same_rows_as_champion(self, run: RunInfo) -> bool:
        """The delta compares the same customers: the champion was re-scored on the run's
        rows, or was evaluated on the same rows at training."""
        if self.champion is None:
            return False
        return run.run_id in self.rescored or _eval_key(run.tags) == self.champion["eval_digest"]

    def delta(self, run: RunInfo, metric: str) -> float | None:
        if not self.champion or metric not in run.metrics:
            return None
        base = self.rescored.get(run.run_id, self.champion["metrics"]).get(metric)
        return None if base is None else run.metrics[metric] - base

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "runs": [
                {
                    "run_id": r.run_id,
                    "run_name": r.name,
                    "status": r.status,
                    "metrics": r.metrics,
                    "params": r.params,
                    "dataset_digest": r.dataset_sha256,
                    "delta_vs_champion": {
                        m: d for m in REPORTED_METRICS if (d := self.delta(r, m)) is not None
                    },
                    # a delta between metrics computed on different rows is not a comparison:
                    # the release gates re-score the champion on the run's own rows
                    "delta_on_same_rows": self.same_rows_as_champion(r),
                    "champion_rescored": self.rescored.get(r.run_id),
                }
                for r in self.runs
            ],
            "champion": self.champion,
            "differing_params": self.differing_params,
            "best": self.best,
            "comparable": self.comparable,
        }


def runs(ctx: Context, last: int = 10) -> list[RunInfo]:
    """The most recent runs, newest first."""
    if not 1 <= last <= MAX_RUNS:
        raise BadInput(f"--last {last} is out of range; use 1 to {MAX_RUNS}")
    return ctx.runs.search_runs(max_results=last)


def compare(
    ctx: Context,
    run_ids: list[str] | None = None,
    *,
    last: int | None = None,
    top: int | None = None,
    metric: str | None = None,
) -> Comparison:
    """Compare named runs, the `last` most recent, or the `top` best by `metric`."""
    metric = metric or ctx.policy.gates.primary_metric
    if not metric.replace("_", "").isalnum():
        raise BadInput(f"--metric {metric!r} is not a metric name; e.g. --metric roc_auc")
    for name, value in (("--last", last), ("--top", top)):
        if value is not None and not 1 <= value <= MAX_RUNS:
            raise BadInput(f"{name} {value} is out of range; use 1 to {MAX_RUNS}")
    lower = metric in LOWER_IS_BETTER
    if run_ids:
        if last or top:
            raise BadInput("give run ids or --last/--top, not both")
        selected = [ctx.runs.get_run(r) for r in dict.fromkeys(run_ids)]
    elif top:
        selected = ctx.runs.top_runs(metric, top, lower)
    else:
        selected = ctx.runs.search_runs("attributes.status = 'FINISHED'", max_results=last or 5)
    if not selected:
        raise BadInput("no finished runs to compare; train one with `magenta-release train`")
    if run_ids and not any(metric in r.metrics for r in selected):
        raise BadInput(
            f"no selected run has metric {metric!r}; "
            f"known metrics: {', '.join(sorted(selected[0].metrics))}"
        )

    keys = sorted({k for r in selected for k in r.params})
    differing = [k for k in keys if len({r.params.get(k) for r in selected}) > 1]
    champion = _champion(ctx)
    rescored = _rescore_champion(ctx, selected) if champion else {}
    return Comparison(selected, metric, champion, differing, _best(selected), rescored)


def _rescore_champion(ctx: Context, runs: list[RunInfo]) -> dict[str, dict[str, float]]:
    """The champion's metrics on each run's own evaluation rows, as the gates compute them,
    where the rows can still be read (once per distinct set of rows). Reads only: the model
    is fetched (and verified) into a temporary folder."""
    champ = ctx.registry.alias("champion")
    if champ is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    by_rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="magenta-compare-") as tmp:
        try:
            model = models.fetch(ctx, champ, Path(tmp) / "champion")
        except ReleaseError:
            return {}
        threshold = evaluate.threshold_of(ctx.runs.get_run(champ.run_id).metrics)
        for run in runs:
            key = _eval_key(run.tags)
            if key in by_rows:
                out[run.run_id] = by_rows[key]
                continue
            try:
                rows = candidate.evaluation_rows(
                    ctx.policy.data, run, ctx.policy.residency.allowed_source_protocols
                )
                if isinstance(rows, str):
                    continue
                x = candidate.model_frame(rows.frame, model.all_inputs, "champion", ctx.policy.data)
            except ReleaseError:
                continue  # not re-scorable: the table shows the marked delta instead
            scores = model_files.score(model.model, x)
            # at the champion's own threshold: what the gates compare
            by_rows[key] = out[run.run_id] = evaluate.metrics(rows.y, scores, threshold)
    return out


def _best(selected: list[RunInfo]) -> dict[str, str]:
    """The best run per primary metric."""
    best: dict[str, str] = {}
    for m in REPORTED_METRICS:
        scored = [r for r in selected if m in r.metrics]
        if scored:
            ranked = sorted(scored, key=lambda r, m=m: r.metrics[m])  # type: ignore[misc]
            best[m] = (ranked[0] if m in LOWER_IS_BETTER else ranked[-1]).run_id
    return best


def _champion(ctx: Context) -> dict[str, Any] | None:
    champ = ctx.registry.alias("champion")
    if champ is None:
        return None
    run = ctx.runs.get_run(champ.run_id)
    return {
        "version": champ.version,
        "run_id": champ.run_id,
        "metrics": run.metrics,
        "dataset_digest": run.dataset_sha256,
        "eval_digest": _eval_key(run.tags),
    }


def _eval_key(tags: dict[str, str]) -> str:
    """What identifies the rows a run was evaluated on (its evaluation digest)."""
    return tags.get(keys.RUN_EVAL_SHA256) or tags.get(keys.RUN_DATASET_SHA256, "")


def write_plot(ctx: Context, comparison: Comparison, path: Path) -> Path:
    """One PNG with the runs' ROC and PR curves overlaid (the champion's dashed)."""
    if path.suffix.lower() != ".png":
        raise BadInput(f"--plot {path} must end in .png")
    if not path.parent.exists():
        raise BadInput(f"--plot {path}: folder {path.parent} does not exist")
    entries = [(r.run_id, r.name or r.run_id[:8], r.metrics, "-") for r in comparison.runs]
    if comparison.champion and comparison.champion["run_id"] not in {
        r.run_id for r in comparison.runs
    }:
        c = comparison.champion
        entries.append((c["run_id"], f"champion v{c['version']}", c["metrics"], "--"))
    found = []
    with tempfile.TemporaryDirectory(prefix="magenta-compare-") as tmp:
        for run_id, name, metrics, style in entries:
            try:
                local = ctx.runs.download(run_id, "evaluation/curves.json", Path(tmp) / run_id)
            except BadInput:
                continue  # a run without curves (e.g. a team's own run) is left out
            found.append((name, metrics, style, json.loads(local.read_text())))
    base = next((r.metrics["base_rate"] for r in comparison.runs if "base_rate" in r.metrics), None)
    return plots.comparison(found, base, path)
