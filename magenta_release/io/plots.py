"""Plots as PNG files (matplotlib's object API: no pyplot state): what `train` logs beside
its metrics, drawn from the pure curves of `core.metrics`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from magenta_release.core.drift import MetricCheck
from magenta_release.core.extras import require
from magenta_release.core.metrics import curves, lift_by_decile


def write_plots(
    y: np.ndarray,
    scores: np.ndarray,
    importance: dict[str, float],
    folder: Path,
    roc_pr: dict[str, Any] | None = None,
    label: str = "",
) -> list[Path]:
    """ROC, PR, calibration, lift-by-decile and feature-importance PNGs into `folder`, each
    titled with `label` (the run) so a plot found on its own still says what it shows.

    Matplotlib's object API with fixed margins: no pyplot state, no tight_layout pass (which
    took a third of the plotting time in profiles)."""
    require("matplotlib", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    c = roc_pr or curves(y, scores)
    suffix = f" — {label}" if label else ""
    paths: list[Path] = []

    def figure(left: float = 0.14, size: tuple[float, float] = (6.4, 5.2)) -> tuple[Any, Any]:
        # ~640 px wide at 100 dpi: legible at a glance in the MLflow UI and in the deck
        fig = Figure(figsize=size, dpi=100)
        FigureCanvasAgg(fig)
        fig.subplots_adjust(left=left, bottom=0.13, right=0.96, top=0.9)
        return fig, fig.add_subplot()

    def save(fig: Any, name: str) -> None:
        path = folder / name
        fig.savefig(path)
        paths.append(path)

    fig, ax = figure()
    ax.plot(c["roc"]["fpr"], c["roc"]["tpr"])
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC" + suffix)
    save(fig, "roc_curve.png")

    fig, ax = figure()
    ax.plot(c["pr"]["recall"], c["pr"]["precision"])
    ax.axhline(float(np.mean(y)), linestyle="--", color="grey")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall" + suffix)
    save(fig, "pr_curve.png")

    fig, ax = figure()
    frac_pos, mean_pred = calibration_curve(y, scores, n_bins=10, strategy="quantile")
    ax.plot(mean_pred, frac_pos, marker="o")
    top = max(float(mean_pred.max()), float(frac_pos.max()), 0.01)
    ax.plot([0, top], [0, top], linestyle="--", color="grey")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title="Calibration" + suffix,
    )
    save(fig, "calibration_curve.png")

    fig, ax = figure()
    ax.bar(range(1, 11), lift_by_decile(y, scores))
    ax.axhline(1.0, linestyle="--", color="grey")
    ax.set(xlabel="score decile (1 = highest)", ylabel="lift", title="Lift by decile" + suffix)
    save(fig, "lift_by_decile.png")

    fig, ax = figure(left=0.42, size=(9, 6.5))
    top_features = sorted(importance.items(), key=lambda kv: kv[1])[-15:]
    ax.barh([k for k, _ in top_features], [v for _, v in top_features])
    ax.tick_params(axis="y", labelsize=10)
    ax.set(xlabel="importance (gain share)", title="Feature importance" + suffix)
    save(fig, "feature_importance.png")
    return paths


def over_time(
    history: list[Any],
    metric: MetricCheck,
    psi_score: float,
    psi_max: float,
    about: tuple[str, int, float],
    path: Path,
) -> None:
    """The primary metric (with its CI and the floor) and PSI per health check, oldest first:
    the earlier checks' runs (`history`) and this one (`metric`, `psi_score`, `psi_max`).
    `about`: the model, the champion's version and the PSI limit."""
    require("matplotlib", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    model, version, max_psi = about
    name = metric.name
    past = [r for r in history if name in r.metrics]
    past.sort(key=lambda r: r.start_time)
    times = [datetime.fromtimestamp(r.start_time / 1000, UTC) for r in past]
    times.append(datetime.now(UTC))
    values = [r.metrics[name] for r in past] + [metric.value]
    lows = [r.metrics.get(f"{name}_ci_low", np.nan) for r in past] + [metric.ci_low]
    highs = [r.metrics.get(f"{name}_ci_high", np.nan) for r in past] + [metric.ci_high]
    scores = [r.metrics.get("psi_score", np.nan) for r in past] + [psi_score]
    worst = [r.metrics.get("psi_max", np.nan) for r in past] + [psi_max]
    fig = Figure(figsize=(8, 6))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.fill_between(times, lows, highs, alpha=0.2, label="CI")
    top.plot(times, values, marker="o", label=name)
    if metric.floor is not None:
        top.axhline(metric.floor, color="red", linestyle="--", label="alert threshold")
    top.set_ylabel(name)
    top.set_title(f"{model} champion health (v{version} now)")
    top.legend(loc="best")
    bottom.plot(times, scores, marker="o", label="PSI of the score")
    bottom.plot(times, worst, marker="x", label="largest PSI")
    bottom.axhline(max_psi, color="red", linestyle="--", label="max_psi")
    bottom.set_ylabel("PSI")
    bottom.legend(loc="best")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100)


def comparison(
    entries: list[tuple[str, dict[str, float], str, dict[str, Any]]],
    base_rate: float | None,
    path: Path,
) -> Path:
    """One PNG with each entry's ROC and PR curves overlaid: (label, metrics, line style,
    curves as `core.metrics.curves` returns them)."""
    require("matplotlib", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.5))
    FigureCanvasAgg(fig)
    roc, pr = fig.subplots(1, 2)
    nan = float("nan")
    for name, metrics, style, c in entries:
        roc.plot(
            c["roc"]["fpr"],
            c["roc"]["tpr"],
            style,
            label=f"{name} (ROC AUC {metrics.get('roc_auc', nan):.3f})",
        )
        pr.plot(
            c["pr"]["recall"],
            c["pr"]["precision"],
            style,
            label=f"{name} (PR AUC {metrics.get('pr_auc', nan):.3f})",
        )
    if base_rate is not None:
        pr.axhline(base_rate, linestyle=":", color="grey", label=f"base rate {base_rate:.3f}")
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    roc.legend(fontsize=9)
    pr.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
