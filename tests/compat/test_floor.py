"""The team's environment at the floors (issue 24, `make test-compat`): a Python 3.11 venv with
the team's pins at their lowest (team-floor.txt); `uv pip install --dry-run` of the local wheel
with `[dagster]` must change none of what is installed; then the wheel goes in with every
dependency of the base install and `[dagster]` at the floor pyproject.toml states, and the
tests of the base install, the Dagster integration and bring-your-own runs run there (pandas
2.2, scikit-learn 1.5.2, xgboost 2.1, dagster 1.9; `make test` runs the same tests at the top of
every range, pandas 3 included)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.compat.conftest import HERE, ROOT, UV, project, requirement, uv

# What the job runs inside the team's environment.
TESTS = [
    "tests/core",
    "tests/io",
    "tests/test_bring_your_own.py",
    "tests/dagster_assets",
    "tests/test_real_data.py",
    "tests/test_bad_data.py",
    "tests/test_team_adoption.py",
    "tests/test_fair_gates.py",
]
# Test tools (and the CLI pieces the fixtures drive in-process), at the dev lock's versions.
TOOLS = ["pytest", "pytest-xdist", "typer", "rich", "matplotlib", "tomli-w"]


def floors() -> dict[str, str]:
    """{distribution: lowest version} of the base install and `[dagster]` (pyproject.toml)."""
    meta: dict[str, Any] = project()
    deps: list[str] = [*meta["dependencies"], *meta["optional-dependencies"]["dagster"]]
    out = {}
    for line in deps:
        req = Requirement(line)
        low = [s.version for s in req.specifier if s.operator == ">="]
        if low:
            out[req.name] = low[0]
    return out


def locked(names: list[str]) -> list[str]:
    """`name==version` for `names` as requirements-dev.lock pins them."""
    text = (ROOT / "requirements-dev.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", text, flags=re.M))
    return [f"{n}=={pins[n]}" for n in names]


def versions(python: str) -> dict[str, str]:
    done = subprocess.run(
        [str(UV), "pip", "list", "--format", "json", "--python", python],
        capture_output=True,
        text=True,
        check=True,
    )
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout)}


@dataclass(frozen=True)
class TeamEnv:
    python: str
    before: dict[str, str]  # the team's environment before magenta-release
    plan: str  # what `uv pip install --dry-run ...[dagster]` said it would do
    after: dict[str, str]  # with magenta-release[dagster] and every floor


@pytest.fixture(scope="module")
def team(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> TeamEnv:
    tmp = tmp_path_factory.mktemp("floor")
    venv = tmp / "team"
    uv("venv", "-q", "--python", "3.11", str(venv))
    python = str(venv / "bin" / "python")
    uv("pip", "install", "-q", "--python", python, "-r", str(HERE / "team-floor.txt"))
    before = versions(python)
    plan = uv("pip", "install", "--dry-run", "--python", python, requirement(wheel, "dagster"))
    constraints = tmp / "floors.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in floors().items()))
    uv(
        "pip", "install", "-q", "--python", python, "-r", str(HERE / "team-floor.txt"),
        "-c", str(constraints), requirement(wheel, "dagster"), *locked(TOOLS),
    )  # fmt: skip
    return TeamEnv(python, before, plan, versions(python))


def test_the_dagster_extra_changes_none_of_the_teams_pins(team: TeamEnv) -> None:
    changed = [line for line in team.plan.splitlines() if line.startswith(" - ")]
    assert changed == [], f"magenta-release[dagster] would change: {changed}"
    assert " + magenta-release" in team.plan
    for name in ("dagster", "pandas", "scikit-learn", "xgboost", "pyarrow", "pydantic", "duckdb"):
        assert team.after[name] == team.before[name], name  # the team's pins, as they were
    for name, low in floors().items():  # every dependency at the floor pyproject.toml states
        assert Version(team.after[name.lower()]) == Version(low), (name, team.after[name], low)
    assert "xgboost-cpu" not in team.after


def test_the_base_dagster_and_bring_your_own_tests_pass_at_the_floors(team: TeamEnv) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAGENTA_RELEASE_COMPAT"}
    done = subprocess.run(
        [team.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadfile", *TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout.splitlines()[-1]), done.stdout[-500:]


# The team's own training, with plain MLflow and the optional helpers, in the team's environment.
TEAM_TRAINING = """
import sys
import mlflow
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from xgboost import XGBClassifier
from magenta_release.core.synthetic import generate
from magenta_release.io.fluent import log_evaluation_rows, log_skops_model, tracking

home = sys.argv[1]
table = generate(7, 4000).table
target, ids = "has_churned", ("rating_account_id", "customer_id")
cols = [c for c in table.columns if c not in (*ids, target)]
fit, rows = train_test_split(table, test_size=0.25, stratify=table[target], random_state=7)
brand = ("brand", OneHotEncoder(handle_unknown="ignore"), ["smartphone_brand_group"])
pipe = Pipeline([
    ("encode", ColumnTransformer([brand], remainder="passthrough")),
    ("trees", XGBClassifier(n_estimators=40, max_depth=3, random_state=7)),
])
pipe.fit(fit[cols], fit[target])
uri = f"sqlite:///{home}/mlflow.db"
experiment = mlflow.MlflowClient(uri).get_experiment_by_name("churn")
with tracking(uri), mlflow.start_run(experiment_id=experiment.experiment_id) as run:
    path = f"{home}/evaluation-{run.info.run_id}.parquet"
    rows.to_parquet(path, index=False)
    log_skops_model(pipe, "model")
    log_evaluation_rows(pd.read_parquet(path), path, target, name=f"evaluation-{run.info.run_id}")
    # one metric the gates compute, so metrics_reproducible compares something
    mlflow.log_metric("roc_auc", roc_auc_score(rows[target], pipe.predict_proba(rows[cols])[:, 1]))
print(run.info.run_id)
"""


def test_a_model_from_the_teams_environment_is_scored_in_its_recorded_one(
    team: TeamEnv, tmp_path: Path
) -> None:
    """Item 4: trained with scikit-learn 1.5.2, xgboost 2.1.2 and pandas 2.2.3, proposed by the
    command line with its own newer versions: the gates score it in an environment uv builds
    from the run's recorded requirements, and `show` and the card name the versions."""
    home, cache = tmp_path / "store", tmp_path / "environments"
    command = str(Path(sys.executable).parent / "magenta-release")  # .venv: the newer stack
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAGENTA_RELEASE_", "MLFLOW_"))}
    env |= {"MAGENTA_RELEASE_HOME": str(home), "MAGENTA_RELEASE_ENV_CACHE": str(cache)}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "COLUMNS": "400"}

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
            check=False,
        )  # fmt: skip

    assert run(command, "init").returncode == 0
    trained = run(team.python, "-I", "-c", TEAM_TRAINING, str(home))
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = trained.stdout.strip().splitlines()[-1]
    proposed = run(command, "propose", run_id, "--by", "data-scientist", "--json")
    assert proposed.returncode == 0, proposed.stdout[-3000:] + proposed.stderr[-3000:]
    assert json.loads(proposed.stdout)["status"] == "pending_approval"

    shown = run(command, "show", "1", "--json")
    assert shown.returncode == 0, shown.stderr[-2000:]
    challenger = json.loads(shown.stdout)["evidence"]["environments"]["challenger"]
    assert challenger["recorded"]["scikit-learn"] == "1.5.2"
    assert challenger["recorded"]["xgboost"] == "2.1.2"
    assert challenger["recorded"]["pandas"] == "2.2.3"
    assert challenger["here"]["scikit-learn"] == versions(sys.executable)["scikit-learn"]
    assert {"scikit-learn", "xgboost", "pandas"} <= set(challenger["differing"])
    assert challenger["scored_in"].startswith("in its recorded environment ")
    key = challenger["scored_in"].rsplit(" ", 1)[1]
    built = versions(str(cache / key / "bin" / "python"))  # what it was scored with
    assert built["scikit-learn"] == "1.5.2" and built["xgboost"] == "2.1.2"
    human = run(command, "show", "1")
    assert "challenger: numpy" in human.stdout and "scikit-learn 1.5.2" in human.stdout
    card = run(command, "card", "1")
    assert "## Library versions" in card.stdout and "xgboost 2.1.2" in card.stdout
