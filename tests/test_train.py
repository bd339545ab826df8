"""`init`, `train`: a real SQLite MLflow store, read back with the official MLflow client."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from magenta_release.core import synthetic as data
from magenta_release.io.store import (
    POLICY_FILE,
    TEMPLATE_DIR,
    db_revision,
    schema_head,
    template_db,
)
from tests.conftest import SMALL, Cli, snapshot


def test_template_schema_matches_installed_mlflow() -> None:
    # If this fails after an MLflow upgrade: `make template`.
    assert db_revision(template_db()) == schema_head()


def test_init_is_idempotent_and_creates_the_layout(cli: Cli) -> None:
    home = cli.home
    assert (home / "mlflow.db").is_file()
    assert (home / "artifacts").is_dir()
    # the policy lives in the store, not in a file beside it: version 1 is the template
    assert not (home / "release-policy.toml").exists()
    template = (TEMPLATE_DIR / POLICY_FILE).read_text()
    assert cli("policy", "show").stdout == template
    before = snapshot(home)
    doc = cli.json("init")
    assert doc["created"] is False
    assert doc["artifact_location"] == (home / "artifacts").as_uri()
    assert (doc["model"], doc["policy"]["version"]) == ("churn-classifier", 1)
    assert snapshot(home) == before
    # a different file at init does not replace the stored policy (that is `policy set`)
    edited = home.parent / "edited.toml"
    edited.write_text(template + "\n# edited by the team\n")
    again = cli("init", "--json", env={"MAGENTA_RELEASE_POLICY": str(edited)})
    assert json.loads(again.stdout)["policy"]["version"] == 1
    assert "init does not change a stored policy" in again.stderr  # and says so
    assert snapshot(home) == before


def test_init_on_a_file_is_bad_input(tmp_path: Path) -> None:
    from tests.conftest import make_cli

    (tmp_path / "store").write_text("not a folder")
    result = make_cli(tmp_path / "store")("init")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: store path")
    assert result.stderr.count("\n") == 1


def test_same_seed_same_metrics_other_seed_other_digest(cli: Cli) -> None:
    a = cli.json("train", "--rows", str(SMALL), "--seed", "7")
    b = cli.json("train", "--rows", str(SMALL), "--seed", "7")
    c = cli.json("train", "--rows", str(SMALL), "--seed", "8")
    assert a["run_id"] != b["run_id"]
    assert a["metrics"] == b["metrics"]
    assert a["dataset_digest"] == b["dataset_digest"]
    assert c["dataset_digest"] != a["dataset_digest"]
    assert {
        "roc_auc",
        "pr_auc",
        "lift_at_10",
        "recall_at_10",
        "brier",
        "log_loss",
        "threshold",
        "f1_at_threshold",
    } <= set(a["metrics"])
    assert 0.5 < a["metrics"]["roc_auc"] <= 1.0
    assert a["metrics"]["threshold"] != 0.5


def test_mlflow_client_sees_metrics_dataset_skops_model_and_plots(cli: Cli) -> None:
    import mlflow
    import yaml

    doc = cli.json(
        "train",
        "--rows",
        str(SMALL),
        "--seed",
        "3",
        "--param",
        "max_depth=3",
        "--run-name",
        "depth3",
    )
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cli.home / 'mlflow.db'}")
    run = client.get_run(doc["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "depth3"
    assert run.data.metrics["roc_auc"] == pytest.approx(doc["metrics"]["roc_auc"])
    assert run.data.params["max_depth"] == "3"
    assert run.data.tags["magenta.dataset_sha256"] == doc["dataset_digest"]
    assert run.data.tags["mlflow.source.git.commit"]
    assert run.inputs is not None
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.digest == doc["dataset_digest"][:32]
    assert inputs[0].dataset.source_type == "magenta-table"
    assert "seed=3" in inputs[0].dataset.source
    assert "rows=4000" in inputs[0].dataset.source
    local = Path(client.download_artifacts(doc["run_id"], "", str(cli.home.parent / "dl")))
    mlmodel = yaml.safe_load((local / "model" / "MLmodel").read_text())
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert "input_example" not in mlmodel
    assert "signature" in mlmodel
    assert not list(local.rglob("*.pkl"))
    requirements = (local / "model" / "requirements.txt").read_text()
    assert "xgboost-cpu==" in requirements  # the CPU-only wheel, as installed
    assert "skops==" in requirements
    plots = {p.name for p in (local / "plots").iterdir()}
    assert plots == {
        "roc_curve.png",
        "pr_curve.png",
        "calibration_curve.png",
        "lift_by_decile.png",
        "feature_importance.png",
    }
    assert all((local / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)


def test_store_holds_no_customer_identifiers(cli: Cli) -> None:
    from tests.privacy import leaked_identifiers, store_text

    doc = cli.json("train", "--rows", str(SMALL), "--seed", "5")
    assert doc["run_id"] in store_text(cli.home)  # the scan does see the store's contents
    customers, ids = leaked_identifiers(cli.home, data.generate(5, SMALL).accounts)
    assert not customers and not ids


def test_the_identifier_scan_finds_a_logged_row(cli: Cli) -> None:
    """The scan itself works: log one raw row the way a careless input_example would."""
    from magenta_release.core.settings import Settings
    from magenta_release.io.store import Store
    from tests.privacy import leaked_identifiers

    doc = cli.json("train", "--rows", str(SMALL), "--seed", "5")
    accounts = data.generate(5, SMALL).accounts
    row = accounts.iloc[[7]]
    store = Store.open(Settings(home=cli.home))
    store.client.set_tag(doc["run_id"], "careless", row.to_json(orient="records"))
    customers, ids = leaked_identifiers(cli.home, accounts)
    assert customers == {row["customer_id"].iloc[0]}
    assert ids == {str(row["rating_account_id"].iloc[0])}


def test_a_failure_mid_run_leaves_the_run_failed(store: Any) -> None:
    from magenta_release.app.train import train

    def interrupt(step: str) -> None:
        if step.startswith("fitting"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(store, rows=SMALL, seed=1, progress=interrupt)
    runs = store.runs.search_runs()
    assert [r.status for r in runs] == ["FAILED"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--rows", "-5"],
            "Invalid value for '--rows': Input should be greater than or equal to 200",
        ),
        (["--param", "max_depth"], "is not KEY=VALUE"),
        (["--param", "max_depth=deep"], "must be an integer"),
        (["--param", "__import__('os')=1"], "is not a tunable parameter"),
        (["--run-name", "../../etc/passwd"], "--run-name"),
    ],
)
def test_bad_train_input_exits_2_and_writes_nothing(cli: Cli, args: list[str], needle: str) -> None:
    before = (cli.home / "mlflow.db").read_bytes()
    result = cli("train", *args)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert (cli.home / "mlflow.db").read_bytes() == before


def test_train_without_a_store_says_run_init(tmp_path: Path) -> None:
    from tests.conftest import make_cli

    result = make_cli(tmp_path / "missing")("train")
    assert result.exit_code == 2
    assert "run `magenta-release init` first" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_corrupt_db_is_store_unreachable(cli: Cli) -> None:
    (cli.home / "mlflow.db").write_bytes(b"garbage" * 100)
    result = cli("runs")
    assert result.exit_code == 4
    assert "not a readable MLflow database" in result.stderr


def test_template_copy_is_used(tmp_path: Path) -> None:
    from magenta_release.core.settings import Settings
    from magenta_release.io.store import init_local_store

    home, created = init_local_store(Settings(home=tmp_path / "s"))
    assert created
    # A copy is byte-identical to the template; a database migrated from scratch has the same
    # revision but not the same bytes (alembic's page layout, sqlite's schema counter).
    assert (home / "mlflow.db").read_bytes() == template_db().read_bytes()
    assert db_revision(home / "mlflow.db") == schema_head()
    shutil.rmtree(home)
