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

from tests.conftest import SMALL_DATA_GATES, Cli, make_cli, write_policy

SEED = 11
ROWS = 4000  # accounts: 1,000 evaluation rows, ~30 churners


@dataclass
class Team:
    cli: Cli
    tmp: Path
    instance: Any
    run_id: str  # the run the example code location logged
    pipe: Any  # the example's pipeline, fitted once, for the hand-logged runs below
    columns: list[str]
    eval_rows: pd.DataFrame

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.cli.home / 'mlflow.db'}"


def _resources(team_tmp: Path, home: Path) -> dict[str, Any]:
    from dagster_assets.resources import ParquetJsonIOManager, ReleaseStore
    from examples.team_pipeline.resources import EvaluationFiles, TeamData, TeamMlflow

    return {
        "mlflow_store": TeamMlflow(tracking_uri=f"sqlite:///{home / 'mlflow.db'}"),
        "evaluation": EvaluationFiles(base_dir=str(team_tmp / "evaluation")),
        "data": TeamData(seed=SEED, rows=ROWS),
        "release": ReleaseStore(home=str(home), identity="team-pipeline"),
        "io_manager": ParquetJsonIOManager(base_dir=str(team_tmp / "dagster")),
    }


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A store with approvers alice and bob, and one run logged by the example code location
    (`dg.materialize` of its real assets)."""
    import dagster as dg

    from examples.team_pipeline import assets

    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    tmp = tmp_path_factory.mktemp("byo")
    cli = make_cli(tmp / "mlruns")
    assert cli("init").exit_code == 0
    write_policy(
        cli.home, approval={"approvers": ["alice", "bob"], "four_eyes": True}, **SMALL_DATA_GATES
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [assets.features, assets.label, assets.trained_model],
        resources=_resources(tmp, cli.home),
        instance=instance,
    )
    assert result.success
    run_id = result.output_for_node("trained_model")["run_id"]

    from magenta_release.core.synthetic import generate

    table = generate(SEED, ROWS).table
    columns = [c for c in table.columns if c not in (*assets.IDENTIFIERS, assets.TARGET)]
    fit, rows = table.iloc[: ROWS * 3 // 4], table.iloc[ROWS * 3 // 4 :].reset_index(drop=True)
    pipe = assets.build_pipeline(columns, SEED).fit(fit[columns], fit[assets.TARGET])
    yield Team(cli, tmp, instance, run_id, pipe, columns, rows)
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

    from magenta_release.io import fluent as byo

    rows = team.eval_rows if rows is None else rows
    source = team.tmp / f"{name}.parquet"
    rows.to_parquet(source, index=False)
    experiment = MlflowClient(team.uri).get_experiment_by_name("churn")
    assert experiment is not None
    with byo.tracking(team.uri), mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        if pickle:
            mlflow.sklearn.log_model(
                pipe or team.pipe,
                name="model",
                serialization_format="cloudpickle",
                pip_requirements=["scikit-learn", "xgboost"],
            )
        else:
            byo.log_skops_model(pipe or team.pipe, "model", pip_requirements=["scikit-learn"])
        if evaluation:
            byo.log_evaluation_rows(
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


# ---- (a) the example code location, end to end ------------------------------------------------
def test_example_pipeline_run_is_proposed_approved_and_served(team: Team) -> None:
    import dagster as dg

    from examples.team_pipeline.definitions import defs, new_training_run, propose_job
    from magenta_release.core.synthetic import LABEL, generate

    dg.Definitions.validate_loadable(defs)
    # The asset set the URI only for its block: nothing leaks into later code.
    assert "MLFLOW_TRACKING_URI" not in os.environ

    # The sensor turns the materialization into one proposal request for that run.
    context = dg.build_sensor_context(
        instance=team.instance, repository_def=defs.get_repository_def()
    )
    requests = list(new_training_run(context))  # type: ignore[arg-type]
    assert len(requests) == 1 and isinstance(requests[0], dg.RunRequest), requests
    request = requests[0]
    assert request.run_key == team.run_id

    result = propose_job.execute_in_process(
        run_config=request.run_config,
        resources={"release": _resources(team.tmp, team.cli.home)["release"]},
        instance=team.instance,
    )
    proposal = result.output_for_node("propose_run")
    assert proposal["status"] == "pending_approval", proposal["gates"]
    assert _gate(proposal, "metrics_reproducible")["passed"]
    assert "3 logged metrics match" in _gate(proposal, "metrics_reproducible")["detail"]
    version = str(proposal["version"])
    # what the gates recomputed is on the team's logged model, against its evaluation dataset
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{team.cli.home / 'mlflow.db'}")
    run = client.get_run(team.run_id)
    assert run.outputs is not None and run.inputs is not None
    [output] = run.outputs.model_outputs  # the LoggedModel the pipeline logged
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
    scores = pd.read_parquet(out)
    assert len(scores) == 300
    assert scores["churn_score"].between(0, 1).all()


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
    from examples.team_pipeline.assets import build_pipeline
    from magenta_release.core.synthetic import generate

    table = generate(SEED, ROWS).table
    table["tenure_band"] = table["contract_lifetime_days"] // 365
    columns = [*team.columns, "tenure_band"]
    pipe = build_pipeline(columns, SEED).fit(table[columns], table["has_churned"])
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
