"""`runs` and `compare`: side-by-side training results, fast with many runs."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magenta_release.errors import BadInput
from magenta_release.evaluate import LOWER_IS_BETTER, REPORTED_METRICS
from magenta_release.limits import MAX_RUNS
from magenta_release.store import RunInfo, Store


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


def runs(store: Store, last: int = 10) -> list[RunInfo]:
    """The most recent runs, newest first."""
    if not 1 <= last <= MAX_RUNS:
        raise BadInput(f"--last {last} is out of range; use 1 to {MAX_RUNS}")
    return store.runs.search_runs(max_results=last)


def compare(
    store: Store,
    run_ids: list[str] | None = None,
    *,
    last: int | None = None,
    top: int | None = None,
    metric: str | None = None,
) -> Comparison:
    """Compare named runs, the `last` most recent, or the `top` best by `metric`."""
    metric = metric or store.policy.gates.primary_metric
    if not metric.replace("_", "").isalnum():
        raise BadInput(f"--metric {metric!r} is not a metric name; e.g. --metric roc_auc")
    for name, value in (("--last", last), ("--top", top)):
        if value is not None and not 1 <= value <= MAX_RUNS:
            raise BadInput(f"{name} {value} is out of range; use 1 to {MAX_RUNS}")
    lower = metric in LOWER_IS_BETTER
    if run_ids:
        if last or top:
            raise BadInput("give run ids or --last/--top, not both")
        selected = [store.runs.get_run(r) for r in dict.fromkeys(run_ids)]
    elif top:
        selected = store.runs.top_runs(metric, top, lower)
    else:
        selected = store.runs.search_runs("attributes.status = 'FINISHED'", max_results=last or 5)
    if not selected:
        raise BadInput("no finished runs to compare; train one with `magenta-release train`")
    if run_ids and not any(metric in r.metrics for r in selected):
        raise BadInput(
            f"no selected run has metric {metric!r}; "
            f"known metrics: {', '.join(sorted(selected[0].metrics))}"
        )

    keys = sorted({k for r in selected for k in r.params})
    differing = [k for k in keys if len({r.params.get(k) for r in selected}) > 1]
    champion = _champion(store)
    rescored = _rescore_champion(store, selected) if champion else {}
    return Comparison(selected, metric, champion, differing, _best(selected), rescored)


def _rescore_champion(store: Store, runs: list[RunInfo]) -> dict[str, dict[str, float]]:
    """The champion's metrics on each run's own evaluation rows, as the gates compute them,
    where the rows can still be read (once per distinct set of rows). Reads only: the model
    is fetched (and verified) into a temporary folder."""
    from magenta_release import candidate, evaluate, model_files
    from magenta_release.errors import ReleaseError

    champ = store.registry.alias("champion")
    if champ is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    by_rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="magenta-compare-") as tmp:
        try:
            model = model_files.fetch_verified(store, champ, Path(tmp) / "champion")
        except ReleaseError:
            return {}
        for run in runs:
            key = _eval_key(run.tags)
            if key in by_rows:
                out[run.run_id] = by_rows[key]
                continue
            try:
                rows = candidate.evaluation_rows(store, run)
                if isinstance(rows, str):
                    continue
                x = candidate.model_frame(
                    rows.frame, model.all_inputs, "champion", store.policy.data
                )
            except ReleaseError:
                continue  # not re-scorable: the table shows the marked delta instead
            scores = model_files.score(model.model, x)
            by_rows[key] = out[run.run_id] = evaluate.metrics(
                rows.y, scores, run.metrics.get("threshold", 0.5)
            )
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


def _champion(store: Store) -> dict[str, Any] | None:
    champ = store.registry.alias("champion")
    if champ is None:
        return None
    run = store.runs.get_run(champ.run_id)
    return {
        "version": champ.version,
        "run_id": champ.run_id,
        "metrics": run.metrics,
        "dataset_digest": run.dataset_sha256,
        "eval_digest": _eval_key(run.tags),
    }


def _eval_key(tags: dict[str, str]) -> str:
    """What identifies the rows a run was evaluated on (its evaluation digest)."""
    return tags.get("magenta.eval_sha256") or tags.get("magenta.dataset_sha256", "")


def write_plot(store: Store, comparison: Comparison, path: Path) -> Path:
    """One PNG with the runs' ROC and PR curves overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if path.suffix.lower() != ".png":
        raise BadInput(f"--plot {path} must end in .png")
    if not path.parent.exists():
        raise BadInput(f"--plot {path}: folder {path.parent} does not exist")
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(12, 5.5))
    entries = [(r.run_id, r.name or r.run_id[:8], r.metrics, "-") for r in comparison.runs]
    if comparison.champion and comparison.champion["run_id"] not in {
        r.run_id for r in comparison.runs
    }:
        c = comparison.champion
        entries.append((c["run_id"], f"champion v{c['version']}", c["metrics"], "--"))
    with tempfile.TemporaryDirectory(prefix="magenta-compare-") as tmp:
        for run_id, name, metrics, style in entries:
            try:
                local = store.runs.download(run_id, "evaluation/curves.json", Path(tmp) / run_id)
            except BadInput:
                continue  # a run without curves (e.g. a team's own run) is left out
            curves = json.loads(local.read_text())
            nan = float("nan")
            roc.plot(
                curves["roc"]["fpr"],
                curves["roc"]["tpr"],
                style,
                label=f"{name} (ROC AUC {metrics.get('roc_auc', nan):.3f})",
            )
            pr.plot(
                curves["pr"]["recall"],
                curves["pr"]["precision"],
                style,
                label=f"{name} (PR AUC {metrics.get('pr_auc', nan):.3f})",
            )
    base = next((r.metrics["base_rate"] for r in comparison.runs if "base_rate" in r.metrics), None)
    if base is not None:
        pr.axhline(base, linestyle=":", color="grey", label=f"base rate {base:.3f}")
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    roc.legend(fontsize=9)
    pr.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
