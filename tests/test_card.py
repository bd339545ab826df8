"""The model card and the segment gates (issue 16, items 3 and 4) on real SQLite stores: the
card of a proposal has every section, in markdown and in JSON, and is attached to the run; a
challenger that is better overall but worse on one brand fails `segment_regression`, which
names the brand; segments are cut from the evaluation rows by the policy's column names."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from magenta_release.core.policy import load_policy
from tests.conftest import (
    ALICE,
    CAROL,
    SMALL_DATA_GATES,
    Cli,
    Trained,
    make_cli,
    snapshot,
    write_policy,
)

CARD = {
    "intended_use": "rank customers for the monthly retention campaign",
    "owner": "churn-team@example.eu",
    "limitations": ["trained on synthetic accounts", "not for credit | pricing decisions"],
}
SEGMENTS: dict[str, Any] = {
    "columns": ["smartphone_brand_group", "is_magenta1_customer"],
    "min_rows": 100,
    "max_drop": 0.05,
    "disparate_impact_column": "age",
    "bands": {"age": [0, 30, 45, 60, 200]},
}
MARKDOWN_SECTIONS = (
    "## Intended use and owner",
    "## Data",
    "## Metrics (recomputed on the evaluation rows)",
    "## Gate results",
    "## Proposer and approver",
    "## Segments",
    "## Known limitations",
)


def _gate(gates: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(g for g in gates if g["name"] == name)


def _attached(home: Path, run_id: str, name: str) -> Path:
    found = [p for p in home.rglob(f"release/{name}") if run_id in str(p)]
    assert len(found) == 1, found
    return found[0]


# ---- the card of a run of our own `train` -------------------------------------------------
def test_the_card_has_every_section_in_markdown_and_json(trained: Trained) -> None:
    # ~800 evaluation rows: segments of ~300 rows and ~10 churners move a lot between two
    # models, so this test allows large drops (the brand test below gates on real ones).
    write_policy(trained.cli.home, card=CARD, segments={**SEGMENTS, "max_drop": 0.2})
    cli, good, other = trained.cli, trained.runs["good"], trained.runs["other"]
    assert cli.json("propose", good, by=CAROL)["status"] == "pending_approval"
    assert cli.json("approve", "1", "--reason", "baseline", "--yes", by=ALICE)["champion"] == 1
    proposal = cli.json("propose", other, by=CAROL)
    names = [g["name"] for g in proposal["gates"]]
    # The segment gates follow the value gate; the manifest stays last.
    assert names[-4:] == [
        "campaign_value",
        "segment_regression",
        "disparate_impact",
        "sha256_manifest",
    ]

    doc = cli.json("card", "2")
    assert (doc["version"], doc["as_of"], doc["status"]) == (2, "now", proposal["status"])
    assert (doc["intended_use"], doc["owner"]) == (CARD["intended_use"], CARD["owner"])
    assert doc["limitations"] == CARD["limitations"]
    data = doc["data"]
    assert data["source"].startswith("synthetic://magenta-churn-synthetic/")
    assert len(data["digest"]) == 64 and data["rows"] == 4000
    assert 0 < data["evaluation_rows"] < 4000
    assert data["period"].startswith("2024-04 .. 2024-07")
    roc = doc["metrics"]["values"]["roc_auc"]
    assert roc["ci_low"] < roc["value"] < roc["ci_high"], roc
    assert doc["metrics"]["confidence"] == 0.95
    vs = doc["metrics"]["vs_champion"]
    assert doc["metrics"]["champion"] == 1 and vs["ci_low"] <= vs["mean_diff"] <= vs["ci_high"]
    assert doc["gates"] == proposal["gates"]
    assert doc["people"]["proposed_by"] == CAROL and doc["people"]["approved_by"] is None
    seg = doc["segments"]
    labels = [r["segment"] for r in seg["segments"]]
    assert "smartphone_brand_group=iPhone" in labels and "is_magenta1_customer=1" in labels
    assert "age=[30,45)" in labels and "age=[45,60)" in labels
    iphone = next(r for r in seg["segments"] if r["segment"] == "smartphone_brand_group=iPhone")
    assert iphone["champion"] is not None and iphone["champion_rate"] is not None
    assert (
        sum(r["rows"] for r in seg["segments"] if r["column"] == "age") == (data["evaluation_rows"])
    )
    assert seg["disparate_impact"]["column"] == "age"

    text = cli("card", "2")
    assert text.exit_code == 0, text.stderr
    positions = [text.stdout.index(s) for s in MARKDOWN_SECTIONS]
    assert positions == sorted(positions)
    assert "not for credit \\| pricing decisions" in text.stdout  # escaped in markdown
    assert "smartphone_brand_group=iPhone" in text.stdout
    assert "Disparate impact across age" in text.stdout

    # The approver appears on the card once there is one (read from the live tags).
    one = cli.json("card", "1")
    assert (one["people"]["approved_by"], one["people"]["approve_reason"]) == (ALICE, "baseline")
    assert "approved by alice" in cli("card", "1").stdout

    # Attached at propose: the card as proposed, in both forms.
    attached = json.loads(_attached(cli.home, other, "card.json").read_text())
    assert (attached["as_of"], attached["version"]) == ("proposal", 2)
    assert attached["metrics"] == doc["metrics"] and attached["segments"] == doc["segments"]
    md = _attached(cli.home, other, "card.md").read_text()
    assert all(s in md for s in MARKDOWN_SECTIONS)
    assert "status at proposal" in md


def test_without_segments_the_gates_are_absent_and_the_card_says_so(
    released: Trained,
) -> None:
    gates = released.cli.json("show", "2")["gates"]
    assert not {"segment_regression", "disparate_impact"} & {g["name"] for g in gates}
    doc = released.cli.json("card", "2")
    assert doc["segments"] is None
    template = load_policy(
        Path(__file__).parents[1] / "magenta_release" / "template" / "release-policy.toml"
    )
    assert doc["intended_use"] == template.card.intended_use  # the template's churn card
    assert doc["limitations"] == list(template.card.limitations)
    out = released.cli("card", "2").stdout
    assert "not configured (no [segments] in the release policy)" in out


def test_a_segment_column_missing_from_the_rows_fails_the_gate_with_its_name(
    trained: Trained,
) -> None:
    # The raw brand is not in the model table (only its group is): a policy naming it fails
    # the proposal with the column named, it does not crash.
    write_policy(trained.cli.home, card={}, segments={**SEGMENTS, "columns": ["smartphone_brand"]})
    doc = trained.cli.json("propose", trained.runs["good"], by=CAROL, code=1)
    assert doc["status"] == "gates_failed"
    gate = _gate(doc["gates"], "segment_regression")
    assert not gate["passed"]
    assert "segment column smartphone_brand not in the evaluation rows" in gate["detail"]
    card = trained.cli.json("card", "1")
    assert "smartphone_brand not in the evaluation rows" in card["segments"]["error"]
    # An empty [card] is said, not hidden.
    assert (card["intended_use"], card["owner"], card["limitations"]) == (None, None, [])
    out = trained.cli("card", "1").stdout
    assert "intended use: not recorded (set it under [card]" in out
    assert "- none recorded (set `limitations` under [card]" in out


def test_a_bad_segments_section_is_refused_naming_the_key(trained: Trained, tmp_path: Path) -> None:
    path = write_policy(tmp_path, segments={**SEGMENTS, "bands": {"age": [30, 0]}})
    before = snapshot(trained.cli.home)
    result = trained.cli("policy", "set", str(path), "--reason", "x", by="release-manager")
    assert result.exit_code == 2
    assert snapshot(trained.cli.home) == before
    assert "segments.bands" in result.stderr and "strictly increasing" in result.stderr


# ---- a challenger better overall but worse on one brand ------------------------------------
SEED, ROWS = 11, 8000  # 2,000 evaluation rows, ~700 of them Samsung
BRAND = "Samsung"


@dataclass
class Brands:
    cli: Cli
    champion: dict[str, Any]
    challenger: dict[str, Any]


def _risk(t: pd.DataFrame) -> np.ndarray:
    """The generator's churn propensity (DESIGN.md §4), before rescaling."""
    return np.asarray(
        0.10 * (t["age"] > 45)
        + 0.15 * t["contract_lifetime_days"].between(650, 850)
        + 0.20 * t["remaining_binding_days"].between(60, 120)
        - 0.10 * (t["has_special_offer"] == 0)
        - 0.10 * (t["is_magenta1_customer"] == 0)
        + 0.05 * (t["available_gb"] > 30)
        + 0.10 * (t["gross_mrc"] > 35),
        dtype=float,
    )


def _reversed_on(fit: pd.DataFrame, mask: np.ndarray, target: str) -> np.ndarray:
    """Labels whose ranking is turned upside down on `mask` (the least likely churners are
    labelled churners, as many as there were): a model learns to rank those rows backwards."""
    y: np.ndarray = fit[target].to_numpy().copy()
    risk = _risk(fit) + np.random.default_rng(0).random(len(fit)) * 1e-3  # break ties
    rows = np.flatnonzero(mask)
    churners = rows[np.argsort(risk[rows])[: int(y[rows].sum())]]
    y[rows] = 0
    y[churners] = 1
    return y


def _log(cli: Cli, tmp: Path, name: str, pipe: Any, rows: pd.DataFrame, target: str) -> str:
    """A run logged the way a team's script would: skops model and evaluation rows."""
    import mlflow
    from mlflow import MlflowClient

    from magenta_release.io import fluent

    uri = f"sqlite:///{cli.home / 'mlflow.db'}"
    source = tmp / f"{name}.parquet"
    rows.to_parquet(source, index=False)
    experiment = MlflowClient(uri).get_experiment_by_name("churn")
    assert experiment is not None
    from sklearn.metrics import roc_auc_score

    stored = pd.read_parquet(source)
    scores = pipe.predict_proba(stored[list(pipe.feature_names_in_)])[:, 1]
    with fluent.tracking(uri), mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        fluent.log_skops_model(pipe, "model", pip_requirements=["scikit-learn", "xgboost"])
        fluent.log_evaluation_rows(stored, str(source), target, name=f"evaluation-{name}")
        # a logged metric for metrics_reproducible to compare (it fails when there is none)
        mlflow.log_metric("roc_auc", float(roc_auc_score(stored[target], scores)))
    return str(run.info.run_id)


@pytest.fixture(scope="module")
def brands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brands]:
    """Champion: ranks Samsung customers well and everyone else backwards. Challenger: the
    opposite. On the same evaluation rows the challenger is better overall and worse on
    Samsung; v1 is the approved champion, v2 the challenger's proposal."""
    from magenta_release.core.synthetic import generate
    from tests import team_model as assets

    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    tmp = tmp_path_factory.mktemp("brands")
    cli = make_cli(tmp / "mlruns")
    assert cli("init").exit_code == 0
    write_policy(
        cli.home,
        approval={"approvers": [ALICE], "four_eyes": True},
        card=CARD,
        segments={**SEGMENTS, "min_rows": 300},
        **{**SMALL_DATA_GATES, "gates.min": {}},  # the champion is bad overall by design
    )
    target = assets.TARGET
    table = generate(SEED, ROWS).table
    columns = [c for c in table.columns if c not in (*assets.IDENTIFIERS, target)]
    fit, rows = table.iloc[: ROWS * 3 // 4], table.iloc[ROWS * 3 // 4 :].reset_index(drop=True)
    brand = (fit["smartphone_brand_group"] == BRAND).to_numpy()
    models = {}
    for name, backwards in (("champion", ~brand), ("challenger", brand)):
        pipe = assets.build_pipeline(columns, SEED)
        # Deep enough to learn a brand interaction (the team's 3-deep default barely does).
        pipe.set_params(trees__max_depth=5, trees__n_estimators=200)
        models[name] = pipe.fit(fit[columns], _reversed_on(fit, backwards, target))
    champion = cli.json("propose", _log(cli, tmp, "champion", models["champion"], rows, target))
    assert champion["status"] == "pending_approval", champion["gates"]
    assert cli.json("approve", "1", "--reason", "baseline", "--yes", by=ALICE)["champion"] == 1
    run = _log(cli, tmp, "challenger", models["challenger"], rows, target)
    challenger = cli.json("propose", run, by=CAROL, code=1)
    yield Brands(cli, champion, challenger)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


def test_worse_on_one_brand_but_better_overall_fails_segment_regression_naming_it(
    brands: Brands,
) -> None:
    doc = brands.challenger
    assert doc["status"] == "gates_failed"
    overall = _gate(doc["gates"], "no_regression_roc_auc")
    assert overall["passed"] and "gain" in overall["detail"], overall  # better overall
    failed = [g["name"] for g in doc["gates"] if not g["passed"]]
    assert failed == ["segment_regression"], doc["gates"]
    detail = _gate(doc["gates"], "segment_regression")["detail"]
    assert detail.startswith(f"smartphone_brand_group={BRAND}: roc_auc "), detail
    for other in ("iPhone", "Huawei, Xiaomi", "is_magenta1_customer", "age="):
        assert f"{other}" not in detail.split("; allowed drop")[0], detail

    card = brands.cli.json("card", "2")
    rows = {r["segment"]: r for r in card["segments"]["segments"]}
    samsung = rows[f"smartphone_brand_group={BRAND}"]
    assert samsung["gated"] and samsung["drop"] > 0.05
    assert samsung["challenger"] < samsung["champion"]
    iphone = rows["smartphone_brand_group=iPhone"]
    assert iphone["gated"] and iphone["drop"] < 0  # a gain elsewhere
    text = brands.cli("card", "2").stdout
    assert f"| smartphone_brand_group={BRAND} |" in text
    assert "| segment_regression | **FAIL** |" in text


def test_disparate_impact_is_reported_not_blocking_by_default(brands: Brands) -> None:
    gate = _gate(brands.challenger["gates"], "disparate_impact")
    assert gate["passed"] and gate["detail"].endswith("(reported, not blocking)"), gate
    di = brands.cli.json("card", "2")["segments"]["disparate_impact"]
    rates = di["rates"]
    assert set(rates) <= {"age=[0,30)", "age=[30,45)", "age=[45,60)", "age=[60,200)"}
    if di["ratio"] is not None:
        assert di["ratio"] == pytest.approx(min(rates.values()) / max(rates.values()))
