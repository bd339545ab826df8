"""Bring your own training (docs/bring-your-own-training.md): runs logged by a team's own code
with plain MLflow, proposed, approved and served on a real SQLite store; each refusal with its
exit code and a message that names the fix."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests import team_model
from tests.conftest import SMALL_DATA_GATES, Cli, make_cli, write_policy

SEED = 11
ROWS = 4000  # accounts: 1,000 evaluation rows, ~30 churners


@dataclass
class Team:
    cli: Cli
    tmp: Path
    pipe: Any  # the team's pipeline, fitted once, for the hand-logged runs below
    columns: list[str]
    eval_rows: pd.DataFrame

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.cli.home / 'mlflow.db'}"


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A store with approvers alice and bob, and the team's pipeline fitted on the first 3/4
    of the accounts (the runs below are logged with plain MLflow, as a team's script would)."""
    from magenta_release.core.synthetic import generate

    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    tmp = tmp_path_factory.mktemp("byo")
    cli = make_cli(tmp / "mlruns")
    assert cli("init").exit_code == 0
    write_policy(
        cli.home, approval={"approvers": ["alice", "bob"], "four_eyes": True}, **SMALL_DATA_GATES
    )
    table = generate(SEED, ROWS).table
    columns = [c for c in table.columns if c not in (*team_model.IDENTIFIERS, team_model.TARGET)]
    fit, rows = table.iloc[: ROWS * 3 // 4], table.iloc[ROWS * 3 // 4 :].reset_index(drop=True)
    pipe = team_model.build_pipeline(columns, SEED).fit(fit[columns], fit[team_model.TARGET])
    yield Team(cli, tmp, pipe, columns, rows)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


def log_run(
    team: Team,
    name: str,
    *,
    pipe: Any = None,
    rows: pd.DataFrame | None = None,
    pickle: bool = False,
    evaluation: bool = True,
    metrics: dict[str, float] | None = None,
    target: str | None = "has_churned",
) -> tuple[str, Path]:
    """A run logged the way a team's own script would, with plain MLflow and the optional
    helper; its evaluation rows in their own parquet file. Returns (run id, that file)."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    from magenta_release.io import fluent

    rows = team.eval_rows if rows is None else rows
    source = team.tmp / f"{name}.parquet"
    rows.to_parquet(source, index=False)
    experiment = MlflowClient(team.uri).get_experiment_by_name("churn")
    assert experiment is not None
    with fluent.tracking(team.uri), mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        if pickle:
            mlflow.sklearn.log_model(
                pipe or team.pipe,
                name="model",
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn", "xgboost"],
            )
        else:
            fluent.log_skops_model(pipe or team.pipe, "model", pip_requirements=["scikit-learn"])
        if evaluation:
            fluent.log_evaluation_rows(
                pd.read_parquet(source), str(source), target, name=f"evaluation-{name}"
            )
        if metrics:
            mlflow.log_metrics(metrics)
    assert not mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]  # the helper put the global state back
    return run.info.run_id, source


def _gate(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in doc["gates"] if g["name"] == name)


def _error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return str(lines[0])


# ---- (a) a team's run, end to end ----------------------------------------------------------
def test_a_team_run_is_proposed_approved_and_served(team: Team) -> None:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from magenta_release.core.synthetic import LABEL, generate

    scores = team.pipe.predict_proba(team.eval_rows[team.columns])[:, 1]
    y = team.eval_rows[team_model.TARGET]
    claims = {"roc_auc": roc_auc_score(y, scores), "brier": brier_score_loss(y, scores)}
    run_id, _ = log_run(team, "team-run", metrics={k: float(v) for k, v in claims.items()})
    proposal = team.cli.json("propose", run_id, by="team-pipeline")
    assert proposal["status"] == "pending_approval", proposal["gates"]
    assert "2 logged metrics match" in _gate(proposal, "metrics_reproducible")["detail"]
    version = str(proposal["version"])
    # what the gates recomputed is on the team's logged model, against its evaluation dataset
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=team.uri)
    run = client.get_run(run_id)
    assert run.outputs is not None and run.inputs is not None
    [output] = run.outputs.model_outputs  # the LoggedModel the team logged
    logged = client.get_logged_model(output.model_id)
    gated = {m.key: m for m in logged.metrics or [] if m.key.startswith("gated.")}
    [evaluation] = [
        i for i in run.inputs.dataset_inputs if any(t.value == "evaluation" for t in i.tags)
    ]
    recomputed = team.cli.json("show", version)["evidence"]["metrics"]
    assert gated["gated.roc_auc"].value == pytest.approx(recomputed["roc_auc"])
    assert {m.dataset_digest for m in gated.values()} == {evaluation.dataset.digest}
    assert {"gated.roc_auc", "gated.pr_auc", "gated.brier"} <= set(gated)
    status = team.cli.json("status")
    assert status["challenger"]["version"] == proposal["version"]

    # Four eyes: the pipeline proposed, so alice (an approver) may approve.
    done = team.cli.json("approve", version, "--reason", "team model", "--yes", by="alice")
    assert done["champion"] == proposal["version"]

    scoring = team.tmp / "customers.parquet"
    generate(99, 300).table.drop(columns=[LABEL]).to_parquet(scoring, index=False)
    out = team.tmp / "scores.parquet"
    served = team.cli.json("predict", "--input", str(scoring), "--output", str(out))
    assert served == {**served, "rows": 300, "model_version": proposal["version"]}
    scores_out = pd.read_parquet(out)
    assert len(scores_out) == 300
    assert scores_out["churn_score"].between(0, 1).all()


# ---- (b) refusals -----------------------------------------------------------------------------
def test_a_pickled_model_is_refused_as_an_integrity_violation(team: Team) -> None:
    run_id, _ = log_run(team, "pickled", pickle=True)
    result = team.cli("propose", run_id, by="team-pipeline")
    assert result.exit_code == 3, result.stderr
    line = _error(result)
    assert "pickle" in line and "skops" in line, line


def test_a_run_without_evaluation_input_is_refused(team: Team) -> None:
    run_id, _ = log_run(team, "no-eval", evaluation=False)
    result = team.cli("propose", run_id, by="team-pipeline")
    assert result.exit_code == 1, result.stderr
    line = _error(result)
    assert "no evaluation input" in line and 'context="evaluation"' in line, line


def test_a_deleted_evaluation_source_fails_the_gates(team: Team) -> None:
    run_id, source = log_run(team, "deleted")
    source.unlink()
    doc = team.cli.json("propose", run_id, by="team-pipeline", code=1)
    assert doc["status"] == "gates_failed"
    detail = _gate(doc, "metrics_reproducible")["detail"]
    assert "cannot be read" in detail and "restore it" in detail, detail
    assert not _gate(doc, "no_regression")["passed"]


def test_an_edited_evaluation_source_fails_the_gates(team: Team) -> None:
    run_id, source = log_run(team, "edited")
    rows = pd.read_parquet(source)
    rows.loc[0, "age"] = rows.loc[0, "age"] + 1  # one value, one row
    rows.to_parquet(source, index=False)
    doc = team.cli.json("propose", run_id, by="team-pipeline", code=1)
    assert doc["status"] == "gates_failed"
    detail = _gate(doc, "metrics_reproducible")["detail"]
    assert "changed since the run logged it" in detail and "log a new run" in detail, detail


def test_a_model_needing_a_column_the_rows_lack_is_bad_input(team: Team) -> None:
    from magenta_release.core.synthetic import generate

    table = generate(SEED, ROWS).table
    table["tenure_band"] = table["contract_lifetime_days"] // 365
    columns = [*team.columns, "tenure_band"]
    pipe = team_model.build_pipeline(columns, SEED).fit(table[columns], table["has_churned"])
    run_id, _ = log_run(team, "extra-column", pipe=pipe)  # rows without tenure_band
    result = team.cli("propose", run_id, by="team-pipeline")
    assert result.exit_code == 2, result.stderr
    line = _error(result)
    assert "tenure_band" in line, line


def test_rows_without_the_target_are_bad_input(team: Team) -> None:
    run_id, _ = log_run(
        team, "no-target", rows=team.eval_rows.drop(columns=["has_churned"]), target=None
    )
    result = team.cli("propose", run_id, by="team-pipeline")
    assert result.exit_code == 2, result.stderr
    line = _error(result)
    assert "has_churned" in line and "target" in line, line


# ---- (c) a run's own claims are not trusted ----------------------------------------------
def test_a_claimed_roc_auc_that_does_not_reproduce_fails(team: Team) -> None:
    run_id, _ = log_run(team, "boastful", metrics={"roc_auc": 0.99})
    doc = team.cli.json("propose", run_id, by="team-pipeline", code=1)
    assert doc["status"] == "gates_failed"
    gate = _gate(doc, "metrics_reproducible")
    assert not gate["passed"]
    recomputed = float(gate["detail"].split("recomputed ")[1].split()[0].rstrip(";"))
    assert "roc_auc logged 0.9900" in gate["detail"] and recomputed < 0.99, gate
    # The floors are judged on the recomputed value, never the claim.
    assert f"roc_auc = {recomputed:.4f}" in _gate(doc, "min_roc_auc")["detail"]


# ---- (d) runs of `magenta-release train` are unchanged ---------------------------------------
def test_runs_of_our_own_train_are_proposed_as_before(cli: Cli) -> None:
    write_policy(cli.home, **SMALL_DATA_GATES)
    run = cli.json("train", "--rows", str(ROWS), "--seed", "7")
    doc = cli.json("propose", run["run_id"], by="ci")
    assert doc["status"] == "pending_approval", doc["gates"]
    assert [g["name"] for g in doc["gates"]] == [
        "required_metrics",
        "min_roc_auc",
        "max_relative_brier",
        "skops_format",
        "no_identifier_inputs",
        "input_schema",
        "metrics_reproducible",
        "evaluation_disjoint",
        "no_regression",
        "campaign_value",
        "sha256_manifest",
    ]
    assert all(g["passed"] for g in doc["gates"])
    # The evidence is still our split of the generator's table, with its digest.
    assert run["dataset_digest"][:16] in doc["report"], doc["report"]
