"""The gate registry: every gate of the policy is in the table an approver reads, and a gate
that cannot run says why instead of going missing (it used to vanish when the champion could
not be scored)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from magenta_release.app.services.candidate import EvalRows
from magenta_release.app.services.evaluation import Inputs, run_gates
from magenta_release.core import fairness
from magenta_release.core.policy import Policy
from magenta_release.core.records import RunInfo, VersionInfo
from magenta_release.io.model_files import Verified

SEGMENTS = {"segments": {"bands": {"age": [0, 50, 200]}, "min_rows": 10}}


def _inputs(policy: Policy, *, rows: bool, champion: bool, scorable: bool = True) -> Inputs:
    signature = {"inputs": json.dumps([{"name": "age", "type": "double"}])}
    model = Verified("run r", Path("."), {"signature": signature})
    run = RunInfo("r", "r", "FINISHED", 0, {"roc_auc": 0.7}, {}, {})
    champ = VersionInfo(1, "c", "runs:/c/model", "approved", ("champion",)) if champion else None
    i = Inputs(policy, run, model, champ, model if champion else None)
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    if rows:
        frame = pd.DataFrame({"age": rng.integers(18, 90, 400).astype(float)})
        i.rows, i.ours = EvalRows(frame, y, "memory://rows", "split"), rng.random(400)
        # what `evaluate` sets beside the rows: the run's own metrics and the disjointness check
        i.reproduced = {"roc_auc": 0.7}
        i.fair = fairness.judge([], y, "rating_account_id", min_rows=1)
        if champion and scorable:
            i.theirs = rng.random(400)
    else:
        i.rows_problem = "the evaluation source changed since the run logged it"
    if champion and not scorable:
        i.champion_problem = "the champion model needs columns the evaluation rows lack: tenure"
    return i


def _names(gates: list) -> list[str]:  # type: ignore[type-arg]
    return [g.name for g in gates]


def test_every_gate_runs_with_rows_and_a_champion() -> None:
    policy = Policy.model_validate(SEGMENTS)
    gates = run_gates(_inputs(policy, rows=True, champion=True))
    names = _names(gates)
    for name in ("required_metrics", "skops_format", "input_schema", "metrics_reproducible"):
        assert name in names
    assert "no_regression_roc_auc" in names and "campaign_value" in names
    assert "segment_regression" in names


def test_gates_that_cannot_run_are_failed_and_say_why() -> None:
    policy = Policy.model_validate({**SEGMENTS, "value": {"blocking": True}})
    gates = {g.name: g for g in run_gates(_inputs(policy, rows=False, champion=True))}
    for name in ("metrics_reproducible", "no_regression", "campaign_value", "segment_regression"):
        assert not gates[name].passed, name
        assert "cannot re-score: the evaluation source changed" in gates[name].detail
    assert "missing: roc_auc" in gates["required_metrics"].detail


def test_an_unscorable_champion_fails_the_comparisons_and_keeps_the_rest() -> None:
    policy = Policy.model_validate(SEGMENTS)
    gates = {
        g.name: g for g in run_gates(_inputs(policy, rows=True, champion=True, scorable=False))
    }
    assert not gates["no_regression"].passed
    assert "cannot score the champion: the champion model needs" in gates["no_regression"].detail
    # the campaign value is reported, not blocking, by default: shown, passed, saying why
    assert gates["campaign_value"].passed
    assert "cannot score the champion" in gates["campaign_value"].detail
    # the segment comparison could not be made: failed, saying why (not "no champion yet")
    assert not gates["segment_regression"].passed
    assert "cannot score the champion" in gates["segment_regression"].detail


def test_a_first_release_passes_the_comparisons_it_has_nothing_for() -> None:
    gates = {g.name: g for g in run_gates(_inputs(Policy(), rows=True, champion=False))}
    assert gates["no_regression"].passed and "no champion yet" in gates["no_regression"].detail
    assert gates["campaign_value"].passed
