"""Issue 26's acceptance: a team's own code location (get_data -> features/label -> df_input ->
split -> trained_model -> predictions, pickling into git before) on a dbt-duckdb-like table
(string ids, a DATE column, NULLs, a rare level, an 11 % churn rate, `left_within_60d`) adopts
the release tool with few changed lines, proposes through its sensor, is approved by a person
and scores through the champion resource; a tariff launched after training is reported by
`predict` and flagged by `health`. The code location is `examples/team_pipeline/` (it imports
only `magenta_release.sdk` and `magenta_release.dagster`); before adoption it was
`tests/team_pipeline_before/`."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import RELEASE_MANAGER, Cli, make_cli

ROOT = Path(__file__).resolve().parent.parent
AFTER = ROOT / "examples" / "team_pipeline"
BEFORE = ROOT / "tests" / "team_pipeline_before"
POLICY = AFTER / "release-policy.toml"
MAX_CHANGED_LINES = 40  # the "at most ~40 changed lines"


def changed_lines() -> tuple[int, str]:
    """Lines added or removed between the code location before and after adoption (the
    package's own name normalised), and the diff."""
    diff: list[str] = []
    for name in ("assets.py", "resources.py", "definitions.py"):
        old = (BEFORE / name).read_text().replace("tests.team_pipeline_before", "PACKAGE")
        new = (AFTER / name).read_text().replace("examples.team_pipeline", "PACKAGE")
        diff += difflib.unified_diff(
            old.splitlines(), new.splitlines(), f"before/{name}", f"after/{name}", lineterm="", n=0
        )
    changed = [
        line
        for line in diff
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()
    ]
    return len(changed), "\n".join(diff)


def test_adoption_changes_at_most_about_40_lines_and_imports_only_the_integration() -> None:
    count, diff = changed_lines()
    assert 0 < count <= MAX_CHANGED_LINES, diff
    imports = {
        m.group(1)
        for path in AFTER.glob("*.py")
        for m in re.finditer(r"^\s*(?:from|import) (magenta_release[\w.]*)", path.read_text(), re.M)
    }
    assert imports == {"magenta_release", "magenta_release.dagster"}, imports
    # nothing is pickled any more; before, the model went into the repository as a pickle
    assert "pickle" in (BEFORE / "assets.py").read_text()
    code = "".join(p.read_text() for p in AFTER.glob("*.py"))
    assert "import pickle" not in code and "FilesystemIOManager" not in code


@dataclass
class Team:
    cli: Cli
    tmp: Path
    resources: dict[str, Any]
    instance: Any
    warehouse: Path


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    import dagster as dg

    from examples.team_pipeline import warehouse
    from examples.team_pipeline.resources import Warehouse
    from magenta_release.dagster import ChampionModel, FrameIOManager, ReleaseStore

    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    tmp = tmp_path_factory.mktemp("team")
    cli = make_cli(tmp / "mlruns")
    init = cli("init", env={"MAGENTA_RELEASE_POLICY": str(POLICY)})
    assert init.exit_code == 0, init.stderr
    database = warehouse.build(tmp / "warehouse.duckdb")
    release = ReleaseStore(
        home=str(cli.home), identity="team-pipeline", evaluation_dir=str(tmp / "evaluation")
    )
    resources = {
        "warehouse": Warehouse(database=str(database)),
        "release": release,
        "champion": ChampionModel(store=release, output_column="churn_risk"),
        "io_manager": FrameIOManager(base_dir=str(tmp / "dagster")),
    }
    yield Team(cli, tmp, resources, dg.DagsterInstance.ephemeral(), database)
    if saved is not None:
        os.environ["MLFLOW_TRACKING_URI"] = saved


def _gate(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in doc["gates"] if g["name"] == name)


def test_the_team_pipeline_proposes_is_approved_and_scores_through_the_champion(
    team: Team,
) -> None:
    import dagster as dg

    from examples.team_pipeline import assets
    from examples.team_pipeline.definitions import defs, propose_job

    dg.Definitions.validate_loadable(defs)
    training = [
        assets.get_data,
        assets.features,
        assets.label,
        assets.df_input,
        assets.split,
        assets.trained_model,
    ]
    result = dg.materialize(training, resources=team.resources, instance=team.instance)
    assert result.success
    run_id = result.output_for_node("trained_model")
    assert "MLFLOW_TRACKING_URI" not in os.environ  # nothing leaked into the process

    # the sensor turns the materialization into one proposal of that run
    sensor = defs.get_sensor_def("propose_new_run")
    context = dg.build_sensor_context(
        instance=team.instance, repository_def=defs.get_repository_def()
    )
    [request] = list(sensor(context))  # type: ignore[arg-type]
    assert isinstance(request, dg.RunRequest) and request.run_key == run_id
    proposed = propose_job.execute_in_process(
        run_config=request.run_config,
        resources={"release": team.resources["release"]},
        instance=team.instance,
    )
    proposal = proposed.output_for_node("propose_new_run_op")
    assert proposal["status"] == "pending_approval", proposal["gates"]
    fair = _gate(proposal, "evaluation_disjoint")
    assert fair["passed"] and "disjoint from the training rows of the challenger" in fair["detail"]
    reproduced = _gate(proposal, "metrics_reproducible")["detail"]
    assert "roc_auc_score as roc_auc" in reproduced, reproduced  # the team's own names
    assert _gate(proposal, "max_relative_brier")["passed"]  # scaled to the 11 % base rate
    shown = team.cli.json("show", str(proposal["version"]))
    assert 0.09 < shown["evidence"]["metrics"]["base_rate"] < 0.14

    # a person approves (four eyes: the pipeline proposed)
    version = str(proposal["version"])
    approved = team.cli.json(
        "approve", version, "--reason", "first team model", "--yes", by=RELEASE_MANAGER
    )
    assert approved["champion"] == proposal["version"]

    # the champion moved: the sensor asks for new predictions once
    moved = defs.get_sensor_def("champion_moved")
    found = moved(dg.build_sensor_context(resources={"release": team.resources["release"]}))
    assert isinstance(found, dg.SensorResult) and found.run_requests
    scored = dg.materialize(
        [assets.get_data, assets.features, assets.predictions],
        resources=team.resources,
        instance=team.instance,
    )
    assert scored.success
    predictions = scored.output_for_node("predictions")
    assert predictions.index.name == "customer_id"  # the team's index survived the IO manager
    assert predictions["churn_risk"].between(0, 1).all()
    assert (predictions["model_version"] == proposal["version"]).all()
    features = scored.output_for_node("features")
    assert list(predictions.index) == list(features.index)

    a_tariff_never_seen_in_training_is_reported_by_predict_and_flagged_by_health(team)


def a_tariff_never_seen_in_training_is_reported_by_predict_and_flagged_by_health(
    team: Team,
) -> None:
    """With the champion the adoption released (one test: under xdist a second test may run
    on another worker, with a store of its own and no champion)."""
    from examples.team_pipeline import warehouse

    assert team.cli.json("status")["champion"] is not None
    out = team.tmp / "scores.parquet"
    uri = f"duckdb://{team.warehouse}?table=current_customers"
    doc = team.cli.json("predict", "--input", uri, "--output", str(out))
    assert doc["rows"] == 3000
    assert doc["unseen_levels"] == {"tariff": 45}  # before: scored silently
    human = team.cli("predict", "--input", uri, "--output", str(team.tmp / "again.parquet"))
    assert "levels never seen in training: tariff 45 rows" in human.stdout

    labelled = warehouse.churn_table(2000, seed=99, new_tariff_rows=30)
    path = team.tmp / "labelled.parquet"
    labelled.to_parquet(path, index=False)
    health = team.cli.json("health", "--data", str(path), code=1)  # a breach: exit 1
    assert health["unseen_levels"] == {"tariff": 30}
    assert not health["passed"]  # before: healthy
    assert any("never saw in training: tariff 30 rows" in b for b in health["breaches"])


def test_the_io_manager_keeps_a_frame_index(tmp_path: Path) -> None:
    """The team's `pivoted_customer_interactions` is indexed by customer_id; the old writer
    (`index=False`) dropped it and the next asset failed with KeyError: 'customer_id'."""
    import dagster as dg

    from magenta_release.dagster import FrameIOManager

    @dg.asset
    def pivoted_customer_interactions() -> pd.DataFrame:
        frame = pd.DataFrame({"customer_id": ["C-1", "C-2"], "n_cases": [3, 0]})
        return frame.set_index("customer_id")

    @dg.asset
    def uses_it(pivoted_customer_interactions: pd.DataFrame) -> int:
        return int(pivoted_customer_interactions.loc["C-1", "n_cases"])

    result = dg.materialize(
        [pivoted_customer_interactions, uses_it],
        resources={"io_manager": FrameIOManager(base_dir=str(tmp_path))},
    )
    assert result.output_for_node("uses_it") == 3
