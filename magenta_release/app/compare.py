"""`runs` and `compare`: side-by-side training results, fast with many runs."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field, replace
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
    # run_id -> why the champion could not be re-scored on that run's rows
    not_rescored: dict[str, str] = field(default_factory=dict)
    # run_id -> how many of that run's evaluation rows the champion was trained on
    champion_trained_on: dict[str, int] = field(default_factory=dict)
    plot: str | None = None  # the PNG written by `compare --plot`

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
        key = _eval_key(run.tags)
        return run.run_id in self.rescored or (bool(key) and key == self.champion["eval_digest"])

    def delta(self, run: RunInfo, metric: str) -> float | None:
        if not self.champion or metric not in run.metrics:
            return None
        base = self.rescored.get(run.run_id, self.champion["metrics"]).get(metric)
        return None if base is None else run.metrics[metric] - base

    def to_json(self) -> dict[str, Any]:
        doc = {
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
                    "champion_not_rescored": self.not_rescored.get(r.run_id),
                    # evaluation rows of the run that were the champion's training rows: a
                    # delta on them favours the champion (the gates leave them out)
                    "champion_trained_on_rows": self.champion_trained_on.get(r.run_id, 0),
                }
                for r in self.runs
            ],
            "champion": self.champion,
            "differing_params": self.differing_params,
            "best": self.best,
            "comparable": self.comparable,
        }
        return doc if self.plot is None else {**doc, "plot": self.plot}


@dataclass(frozen=True)
class RunList:
    """`runs`: the most recent runs, newest first."""

    runs: list[RunInfo]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "run_id": r.run_id,
                    "run_name": r.name,
                    "status": r.status,
                    "metrics": r.metrics,
                    "dataset_digest": r.dataset_sha256,
                }
                for r in self.runs
            ]
        }


def runs(ctx: Context, last: int = 10) -> RunList:
    """The most recent runs, newest first (a team's metric names shown under ours)."""
    if not 1 <= last <= MAX_RUNS:
        raise BadInput(f"--last {last} is out of range; use 1 to {MAX_RUNS}")
    return RunList(_canonical(ctx, ctx.runs.search_runs(max_results=last)))


def _canonical(ctx: Context, found: list[RunInfo]) -> list[RunInfo]:
    """Runs with their metrics also under the gates' names (`[gates.metric_names]`)."""
    names = ctx.policy.gates.metric_names
    if not names:
        return found
    return [replace(r, metrics=evaluate.canonical_metrics(r.metrics, names)) for r in found]


def compare(
    ctx: Context,
    run_ids: list[str] | None = None,
    *,
    last: int | None = None,
    top: int | None = None,
    metric: str | None = None,
    plot: Path | None = None,
) -> Comparison:
    """Compare named runs, the `last` most recent, or the `top` best by `metric`; with `plot`,
    also write their ROC and PR curves overlaid into that PNG (`write_plot`)."""
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
    selected = _canonical(ctx, selected)
    if run_ids and not any(metric in r.metrics for r in selected):
        raise BadInput(
            f"no selected run has metric {metric!r}; "
            f"known metrics: {', '.join(sorted(selected[0].metrics))}"
        )

    keys = sorted({k for r in selected for k in r.params})
    differing = [k for k in keys if len({r.params.get(k) for r in selected}) > 1]
    champion = _champion(ctx)
    rescore = _rescore_champion(ctx, selected) if champion else Rescored({}, {}, {})
    found = Comparison(
        selected,
        metric,
        champion,
        differing,
        _best(selected),
        rescore.metrics,
        rescore.problems,
        rescore.trained_on,
    )
    if plot is None:
        return found
    write_plot(ctx, found, plot)
    return replace(found, plot=str(plot))


@dataclass(frozen=True)
class Rescored:
    metrics: dict[str, dict[str, float]]  # run_id -> the champion's metrics on its rows
    problems: dict[str, str]  # run_id -> why it could not be re-scored there
    trained_on: dict[str, int]  # run_id -> rows of it the champion was trained on


def _rescore_champion(ctx: Context, runs: list[RunInfo]) -> Rescored:
    """The champion's metrics on each run's own evaluation rows, as the gates compute them,
    where the rows can still be read; once per distinct set of rows (the digest they were
    checked against), never reused for a run whose rows are unknown. Reads only: the model is
    fetched (and verified) into a temporary folder."""
    champ = ctx.registry.alias("champion")
    out = Rescored({}, {}, {})
    if champ is None:
        return out
    by_rows: dict[str, tuple[dict[str, float], int]] = {}
    with tempfile.TemporaryDirectory(prefix="magenta-compare-") as tmp:
        try:
            model = models.fetch(ctx, champ, Path(tmp) / "champion")
        except ReleaseError as exc:
            return Rescored(
                {}, {r.run_id: f"the champion cannot be loaded ({exc})" for r in runs}, {}
            )
        champion_run = ctx.runs.get_run(champ.run_id)
        threshold = evaluate.threshold_of(champion_run.metrics)
        for run in runs:
            try:
                rows = candidate.evaluation_rows(
                    ctx.policy.data, run, ctx.policy.residency.allowed_source_protocols
                )
                if isinstance(rows, str):
                    out.problems[run.run_id] = rows
                    continue
                if rows.digest in by_rows:
                    out.metrics[run.run_id], out.trained_on[run.run_id] = by_rows[rows.digest]
                    continue
                x = candidate.model_frame(rows.frame, model.all_inputs, "champion", ctx.policy.data)
            except ReleaseError as exc:
                out.problems[run.run_id] = str(exc)
                continue  # not re-scorable: the table shows the marked delta instead
            scores = model_files.score(model.model, x)
            # at the champion's own threshold: what the gates compare
            found = evaluate.metrics(rows.y, scores, threshold)
            protocols = ctx.policy.residency.allowed_source_protocols
            try:
                seen = candidate.training_overlap(
                    rows, ctx.policy.data, champion_run, "champion", protocols
                ).overlap
            except ReleaseError:
                seen = None  # its training source is not one this policy reads: not counted
            overlap = int(seen.sum()) if seen is not None else 0
            out.metrics[run.run_id], out.trained_on[run.run_id] = found, overlap
            if rows.digest:
                by_rows[rows.digest] = (found, overlap)
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
