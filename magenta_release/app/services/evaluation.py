"""The gates of one proposal, evaluated: what each gate needs is gathered once (the
candidate's re-read evaluation rows and its scores, the champion's files and scores), then
every gate of the registry below runs on it. A gate declares what it needs; when that cannot
be had (the rows are gone, the champion cannot be scored), the gate is still there, failed,
saying why: a gate never silently goes missing from the table an approver reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magenta_release.app.context import Context
from magenta_release.app.services import candidate, models
from magenta_release.core import card, fairness, keys, metrics
from magenta_release.core import gates as rules
from magenta_release.core.errors import BadInput, ReleaseError
from magenta_release.core.gates import Gate
from magenta_release.core.records import RunInfo, VersionInfo
from magenta_release.io import model_files

if TYPE_CHECKING:
    import numpy as np

    from magenta_release.core.policy import Policy
    from magenta_release.io.model_files import Verified


@dataclass
class Inputs:
    """What the gates may need, gathered once per evaluation."""

    policy: Policy
    run: RunInfo
    challenger: Verified
    champion: VersionInfo | None
    champion_model: Verified | None
    rows: candidate.EvalRows | None = None
    rows_problem: str | None = None  # why the rows could not be had
    ours: np.ndarray | None = None
    theirs: np.ndarray | None = None
    champion_problem: str | None = None  # why the champion could not be scored
    evidence: dict[str, Any] = field(default_factory=dict)

    champion_run: RunInfo | None = None
    # the challenger's metrics on its own evaluation rows, all of them (what its logged
    # metrics are compared with); None with `reproduced_problem` when they cannot be had
    reproduced: dict[str, float] | None = None
    reproduced_problem: str | None = None
    fair: fairness.Fairness | None = None

    @property
    def thresholds(self) -> tuple[float, float]:
        """Each model's own decision threshold."""
        theirs = metrics.DEFAULT_THRESHOLD
        if self.champion_run is not None:
            theirs = metrics.threshold_of(self.champion_run.metrics)
        return metrics.threshold_of(self.run.metrics), theirs


NEEDS_ROWS, NEEDS_CHAMPION = "rows", "champion"


@dataclass(frozen=True)
class Step:
    """One entry of the registry: the gates it yields, what it needs, how it runs."""

    names: Callable[[Policy], tuple[str, ...]]
    needs: frozenset[str]
    run: Callable[[Inputs], list[Gate]]
    # with no champion at all (a first release): what the step yields instead
    first_release: Callable[[Inputs], list[Gate]] | None = None
    # when a need is missing: the gates it yields (default: each name, failed, saying why)
    unavailable: Callable[[Inputs, str], list[Gate]] | None = None
    # a gate the policy makes non-blocking passes even when it cannot run (still shown)
    blocking: Callable[[Policy], bool] = lambda _: True


def _scored(i: Inputs) -> tuple[candidate.EvalRows, np.ndarray]:
    """The rows and the challenger's scores (a step that needs rows runs only with them)."""
    if i.rows is None or i.ours is None:
        raise ValueError("a gate that needs the evaluation rows ran without them")
    return i.rows, i.ours


def _champion_scores(i: Inputs) -> tuple[VersionInfo, np.ndarray]:
    if i.champion is None or i.theirs is None:
        raise ValueError("a gate that needs the champion's scores ran without them")
    return i.champion, i.theirs


def _metric_gates(i: Inputs) -> list[Gate]:
    rows, ours = _scored(i)
    recomputed = metrics.metrics(rows.y, ours, metrics.threshold_of(i.run.metrics))
    i.evidence["metrics"] = recomputed
    return rules.metric_gates(i.policy, recomputed)


def _format(i: Inputs) -> list[Gate]:
    return [Gate("skops_format", True, "serialization_format: skops, no pickle files")]


def _inputs(i: Inputs) -> list[Gate]:
    theirs = i.champion_model.all_inputs if i.champion_model is not None else None
    observed = None
    if i.rows is not None:
        import pandas as pd

        observed = {
            str(c): "number"
            if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
            else "text"
            for c, col in i.rows.frame.items()
        }
    return rules.input_gates(i.policy, i.challenger.all_inputs, theirs, observed)


def _reproducible(i: Inputs) -> list[Gate]:
    if i.reproduced is None:
        strict = i.policy.gates.metrics_reproducible == "require"
        why = f"nothing compared: {i.reproduced_problem or 'no rows of its own'}"
        return [Gate("metrics_reproducible", not strict, why)]
    return [rules.reproducible_gate(i.policy, i.run.metrics, i.reproduced)]


def _fair(i: Inputs) -> list[Gate]:
    if i.fair is None:
        raise ValueError("the disjointness check ran without its result")
    return [i.fair.gate]


def _regression(i: Inputs) -> list[Gate]:
    (rows, ours), (champion, theirs) = _scored(i), _champion_scores(i)
    found, i.evidence["rescored"] = rules.regression_gates(
        i.policy, rows.y, ours, theirs, champion.version, i.thresholds
    )
    return found


def _no_champion(i: Inputs) -> list[Gate]:
    return [Gate("no_regression", True, "no champion yet: nothing to regress against")]


def _value(i: Inputs) -> list[Gate]:
    (rows, ours), (_, theirs) = _scored(i), _champion_scores(i)
    gate, i.evidence["value"] = rules.value_gate(i.policy, rows.y, ours, theirs)
    return [gate]


def _no_value_baseline(i: Inputs) -> list[Gate]:
    return [Gate("campaign_value", True, "no champion yet: no campaign to compare with")]


def _card(i: Inputs) -> list[Gate]:
    rows, ours = _scored(i)
    found, i.evidence["card"] = card.assess(
        i.policy, rows.frame, rows.y, ours, i.theirs, i.thresholds
    )
    refused = i.fair.refused if i.fair is not None else None
    if i.champion is not None and (i.theirs is None or refused is not None):
        # the card still describes the challenger; a segment comparison it could not make is
        # a failed gate saying why, never "no champion yet"
        why = (
            f"not compared: {refused} (see {fairness.GATE})"
            if refused is not None
            else f"cannot score the champion: {i.champion_problem}"
        )
        return [Gate(g.name, False, why) for g in found]
    return found


def _fixed(*names: str) -> Callable[[Policy], tuple[str, ...]]:
    return lambda _: names


def _segment_gates(policy: Policy) -> tuple[str, ...]:
    section = policy.segments
    if section is None:
        return ()
    extra = ("disparate_impact",) if section.disparate_impact_column is not None else ()
    return ("segment_regression", *extra)


def _metrics_unavailable(i: Inputs, why: str) -> list[Gate]:
    return rules.metric_gates(i.policy, {})  # each floor shows its metric as missing


# The registry, in the order the gate table shows. Adding a gate is one entry here.
GATES: tuple[Step, ...] = (
    Step(
        _fixed("required_metrics"),
        frozenset({NEEDS_ROWS}),
        _metric_gates,
        unavailable=_metrics_unavailable,
    ),
    Step(_fixed("skops_format"), frozenset(), _format),
    Step(_fixed("no_identifier_inputs", "input_schema"), frozenset(), _inputs),
    Step(_fixed("metrics_reproducible"), frozenset({NEEDS_ROWS}), _reproducible),
    Step(_fixed(fairness.GATE), frozenset({NEEDS_ROWS}), _fair),
    Step(
        _fixed("no_regression"),
        frozenset({NEEDS_ROWS, NEEDS_CHAMPION}),
        _regression,
        first_release=_no_champion,
    ),
    Step(
        _fixed("campaign_value"),
        frozenset({NEEDS_ROWS, NEEDS_CHAMPION}),
        _value,
        first_release=_no_value_baseline,
        blocking=lambda policy: policy.value.blocking,
    ),
    Step(_segment_gates, frozenset({NEEDS_ROWS}), _card),
)


def _missing(i: Inputs, needs: frozenset[str]) -> str | None:
    if NEEDS_ROWS in needs and i.rows_problem is not None:
        return f"cannot re-score: {i.rows_problem}"
    if NEEDS_CHAMPION in needs and i.champion is not None and i.champion_problem is not None:
        return f"cannot score the champion: {i.champion_problem}"
    refused = i.fair.refused if i.fair is not None else None
    if NEEDS_CHAMPION in needs and i.champion is not None and refused is not None:
        return f"not compared: {refused} (see {fairness.GATE})"
    return None


def run_gates(i: Inputs) -> list[Gate]:
    """Every step of the registry on `i`: a step whose needs are missing yields its gates
    failed (passed if the policy makes them non-blocking), each saying what was missing."""
    out: list[Gate] = []
    for step in GATES:
        why = _missing(i, step.needs)
        if why is not None:
            if step.unavailable is not None:
                out += step.unavailable(i, why)
            else:
                passed = not step.blocking(i.policy)
                out += [Gate(n, passed, why) for n in step.names(i.policy)]
            continue
        if NEEDS_CHAMPION in step.needs and i.champion is None:
            if step.first_release is not None:
                out += step.first_release(i)
            continue
        out += step.run(i)
    return out


def evaluate(
    ctx: Context, run: RunInfo, challenger_dir: Path, champion: VersionInfo | None, tmp: Path
) -> tuple[list[Gate], dict[str, Any]]:
    """Every gate of the policy for one candidate against the current champion. The
    challenger's evaluation rows (or the policy's out-of-time table) are re-read from their
    source and checked against what was recorded; rows that either model was trained on are
    left out, or the comparison refused (`core.fairness`); both models are scored on exactly
    the rows that remain, and the run's own metrics are only compared, never used."""
    policy = ctx.policy
    challenger = model_files.inspect(challenger_dir, f"run {run.run_id}")
    champ = models.fetch(ctx, champion, tmp / f"champion-{champion.version}") if champion else None
    i = Inputs(policy, run, challenger, champion, champ)
    i.evidence.update(
        logged_metrics={k: run.metrics[k] for k in sorted(run.metrics)},
        dataset_sha256=run.dataset_sha256,
        eval_sha256=run.tags.get(keys.RUN_EVAL_SHA256),
        # the library versions each model recorded, and where it was scored (show, the card)
        environments={
            "challenger": challenger.environment(),
            **({"champion": champ.environment()} if champ is not None else {}),
        },
    )
    if champion is not None:
        i.champion_run = ctx.runs.get_run(champion.run_id)
    out_of_time = policy.data.evaluation_table is not None
    rows = (
        candidate.evaluation_table_rows(policy.data, policy.residency.allowed_source_protocols)
        if out_of_time
        else candidate.evaluation_rows(policy.data, run, policy.residency.allowed_source_protocols)
    )
    if isinstance(rows, str):
        i.rows_problem = i.reproduced_problem = rows
        return run_gates(i), i.evidence
    i.evidence["source"] = rows.source
    ours = _score(challenger, rows, "challenger", policy)
    if out_of_time:
        _reproduce_on_own_rows(i, challenger)
    else:
        i.reproduced = metrics.metrics(rows.y, ours, metrics.threshold_of(run.metrics))
    i.fair = _fairness(i, rows)
    i.evidence["fairness"] = i.fair.facts
    if i.fair.keep is not None:
        rows, ours = rows.subset(i.fair.keep), ours[i.fair.keep]
    i.rows, i.ours = rows, ours
    if champ is not None and champion is not None:
        try:
            i.theirs = _score(champ, rows, "champion", policy)
        except BadInput as exc:
            i.champion_problem = str(exc)
    return run_gates(i), i.evidence


def _score(model: Verified, rows: candidate.EvalRows, what: str, policy: Policy) -> np.ndarray:
    x = candidate.model_frame(rows.frame, model.all_inputs, what, policy.data)
    return model_files.score(model.model, x)


def _fairness(i: Inputs, rows: candidate.EvalRows) -> fairness.Fairness:
    """Which evaluation rows each model was trained on, and what the gates may judge."""
    contract = i.policy.data
    protocols = i.policy.residency.allowed_source_protocols
    trained = [candidate.training_overlap(rows, contract, i.run, "the challenger", protocols)]
    if i.champion is not None and i.champion_run is not None:
        label = f"champion v{i.champion.version}"
        trained.append(candidate.training_overlap(rows, contract, i.champion_run, label, protocols))
    g = i.policy.gates
    return fairness.judge(
        trained, rows.y, contract.key, g.min_disjoint_rows, g.require_training_input
    )


def _reproduce_on_own_rows(i: Inputs, challenger: Verified) -> None:
    """With an out-of-time table the gates judge other rows than the run logged its metrics
    on: its claims are checked on its own evaluation rows, when it has them."""
    try:
        own = candidate.evaluation_rows(
            i.policy.data, i.run, i.policy.residency.allowed_source_protocols
        )
    except ReleaseError as exc:
        own = str(exc)
    if isinstance(own, str):
        i.reproduced_problem = f"its own evaluation rows cannot be had ({own})"
        return
    scores = _score(challenger, own, "challenger", i.policy)
    i.reproduced = metrics.metrics(own.y, scores, metrics.threshold_of(i.run.metrics))
