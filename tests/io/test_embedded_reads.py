"""The embedded store's reads without MLflow (`io.store.embedded`) give the answers MLflow's own
client gives on the same store: every read the commands make, compared record by record on a
store with a champion, a challenger, a deleted run, a NaN metric and a deleted version; and a
read command really runs without importing MLflow."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from magenta_release.core.settings import Settings
from magenta_release.io import audit_log, policy_store
from magenta_release.io.store import Store
from magenta_release.io.store.embedded import SCHEMA_REVISION, EmbeddedClient
from magenta_release.io.store.local import db_revision, template_db
from magenta_release.io.store.store import _client
from tests.conftest import Trained

MODEL = "churn-classifier"


def _same(a: object, b: object) -> bool:
    """Equal records, NaN metrics included (NaN is not equal to itself)."""
    return repr(a) == repr(b)


def _pair(home: Path) -> tuple[Store, Store]:
    """The same store through the embedded reads and through MLflow's client only."""
    settings = Settings(home=home)
    fast = Store.open(settings)
    assert isinstance(fast.client, EmbeddedClient)  # a positive control: the path under test
    slow = Store(settings, _client(settings.resolved_tracking_uri()))
    assert not isinstance(slow.client, EmbeddedClient)
    return fast, slow


@pytest.fixture
def busy(released: Trained) -> Trained:
    """The released store plus what a reader must skip or render: a deleted run, a NaN metric,
    a deleted model version (of another model), a model without tags."""
    home = released.cli.home
    client = _client(Settings(home=home).resolved_tracking_uri())
    exp = client.get_experiment_by_name("churn")
    assert exp is not None
    gone = client.create_run(exp.experiment_id, run_name="deleted")
    client.delete_run(gone.info.run_id)
    client.log_metric(released.runs["worse"], "nan_metric", float("nan"))
    client.create_registered_model("scratch")
    mv = client.create_model_version("scratch", "file:///dev/null", run_id=released.runs["good"])
    client.create_model_version("scratch", "file:///dev/null", run_id=released.runs["other"])
    client.delete_model_version("scratch", mv.version)
    released.runs["deleted"] = gone.info.run_id
    return released


def test_registry_and_tag_reads_equal_mlflows(busy: Trained) -> None:
    fast, slow = _pair(busy.cli.home)
    for name in (MODEL, "scratch", "no-such-model"):
        a, b = fast.registry(name), slow.registry(name)
        assert a.versions() == b.versions()
        assert a.alias("champion") == b.alias("champion")
        assert a.alias("challenger") == b.alias("challenger")
    assert fast.registry(MODEL).registered_runs() == slow.registry(MODEL).registered_runs()
    for version in (1, 2):
        assert fast.registry(MODEL).version(version) == slow.registry(MODEL).version(version)
        assert fast.registry(MODEL).description(version) == slow.registry(MODEL).description(
            version
        )
    for name in (MODEL, f"{MODEL}-audit-log", "scratch", "no-such-model"):
        assert fast.tags.model_tags_or_none(name) == slow.tags.model_tags_or_none(name)
        assert fast.tags.model_created(name) == slow.tags.model_created(name)
    assert len(fast.registry(MODEL).versions()) == 2  # a positive control: there is data
    assert audit_log.read(fast, MODEL) == audit_log.read(slow, MODEL)
    assert policy_store.governed_models(fast.client) == policy_store.governed_models(slow.client)
    assert policy_store.governed_models(fast.client) == [MODEL]
    assert policy_store.models_with_head(fast.client) == policy_store.models_with_head(slow.client)
    assert policy_store.stored_runs(fast.client, MODEL) == policy_store.stored_runs(
        slow.client, MODEL
    )


def test_run_reads_equal_mlflows(busy: Trained) -> None:
    fast, slow = _pair(busy.cli.home)
    a, b = fast.runs("churn"), slow.runs("churn")
    assert a.experiment_id() == b.experiment_id()
    assert a.artifact_location() == b.artifact_location()
    for run_id in busy.runs.values():
        assert _same(a.get_run(run_id), b.get_run(run_id))
        if run_id != busy.runs["deleted"]:  # a prefix names an active run
            assert _same(a.get_run(run_id[:10]), b.get_run(run_id[:10]))
        assert a.artifact_paths(run_id) == b.artifact_paths(run_id)
    nan = a.get_run(busy.runs["worse"]).metrics["nan_metric"]
    assert nan != nan  # NaN, as MLflow returns it
    for found in ("", "attributes.status = 'FINISHED'", "attributes.status != 'RUNNING'"):
        assert _same(a.search_runs(found, max_results=2), b.search_runs(found, max_results=2))
        assert _same(a.all_runs(found), b.all_runs(found))
    assert busy.runs["deleted"] not in {r.run_id for r in a.all_runs()}
    assert _same(a.search_runs("metrics.roc_auc > 0.5"), b.search_runs("metrics.roc_auc > 0.5"))
    assert len(a.all_runs()) >= 3


def test_policy_text_and_artifacts_equal_mlflows(busy: Trained) -> None:
    fast, slow = _pair(busy.cli.home)
    log = audit_log.read(fast, MODEL)
    for record in policy_store.versions(log):
        assert policy_store.read_text(fast.client, record) == policy_store.read_text(
            slow.client, record
        )
    run = busy.runs["good"]
    with tempfile.TemporaryDirectory() as x, tempfile.TemporaryDirectory() as y:
        # into a folder that does not exist yet, as compare asks
        ours = Path(fast.runs("churn").download(run, "evaluation/curves.json", Path(x) / "a"))
        theirs = Path(slow.runs("churn").download(run, "evaluation/curves.json", Path(y) / "a"))
        assert ours.read_bytes() == theirs.read_bytes()
        assert ours.relative_to(x) == theirs.relative_to(y)
    record = policy_store.versions(log)[-1]
    policies = fast.runs(policy_store.EXPERIMENT)
    artifact = Path(policies.get_run(record.run_id).artifact_uri.removeprefix("file://"))
    (artifact / policy_store.ARTIFACT).unlink()  # deleted behind the tool's back: exit 3 both
    for store in (fast, slow):
        with pytest.raises(Exception) as caught:
            policy_store.read_text(store.client, record)
        assert type(caught.value).__name__ == "IntegrityViolation"


def test_writes_go_through_mlflow_and_are_read_back(busy: Trained) -> None:
    fast, _ = _pair(busy.cli.home)
    fast.tags.set_model_tag(MODEL, "note", "written")  # builds the MLflow client
    assert fast.tags.model_tags(MODEL)["note"] == "written"  # the reader sees the write


def test_run_prefix_is_found_among_many_runs_and_ambiguity_named(busy: Trained) -> None:
    """A prefix of an old run resolves however many runs came after (the search MLflow does
    for it used to stop at the newest 50,000)."""
    home = busy.cli.home
    from benchmarks.fixtures import bulk_runs

    fast, slow = _pair(home)
    exp = fast.runs("churn").experiment_id()
    old = busy.runs["good"]
    bulk_runs(Settings(home=home).db_path, exp, 3000)
    assert fast.runs("churn").get_run(old[:9]).run_id == old
    assert slow.runs("churn").get_run(old[:9]).run_id == old  # paging, on a server
    con = sqlite3.connect(Settings(home=home).db_path)
    twin = old[:12] + "0" * 20
    with con:
        con.execute(
            "insert into runs (run_uuid, name, source_type, status, start_time, lifecycle_stage, "
            "artifact_uri, experiment_id) values (?, 'twin', 'LOCAL', 'FINISHED', 1, 'active', "
            "'file:///dev/null', ?)",
            (twin, int(exp)),
        )
    con.close()
    with pytest.raises(Exception) as caught:
        fast.runs("churn").get_run(old[:12])
    assert "ambiguous" in str(caught.value)
    assert fast.runs("churn").get_run(old[:13]).run_id == old


def test_another_schema_revision_reads_through_mlflow(
    busy: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MLflow upgrade moves the store to a revision these queries were not written for:
    every read then goes through MLflow's client, with the same answers."""
    assert db_revision(template_db()) == SCHEMA_REVISION  # an MLflow upgrade: look here
    home = busy.cli.home
    fast = Store.open(Settings(home=home))
    assert isinstance(fast.client, EmbeddedClient)  # a positive control: this revision reads
    before = busy.cli.json("status")
    monkeypatch.setattr("magenta_release.io.store.store.SCHEMA_REVISION", "0123456789ab")
    other = Store.open(Settings(home=home))
    assert not isinstance(other.client, EmbeddedClient)
    assert other.registry(MODEL).versions() == fast.registry(MODEL).versions()
    assert audit_log.read(other, MODEL) == audit_log.read(fast, MODEL)
    assert busy.cli.json("status") == before


def test_an_unknown_revision_is_never_read_by_the_embedded_reads(tmp_path: Path) -> None:
    home = tmp_path / "mlruns"
    home.mkdir()
    shutil.copyfile(template_db(), home / "mlflow.db")
    con = sqlite3.connect(home / "mlflow.db")
    with con:
        con.execute("update alembic_version set version_num = 'f00dfeedbeef'")
    con.close()
    with pytest.raises(Exception, match="not supported") as caught:  # MLflow refuses it
        Store.connect(Settings(home=home))
    assert "database schema" in str(caught.value.__cause__)


def test_a_read_command_imports_no_mlflow(busy: Trained) -> None:
    code = (
        "import json, sys; from magenta_release.cli import run; "
        "code = run(['status', '--json']); "
        "sys.stderr.write(json.dumps({'code': code, 'mlflow': 'mlflow' in sys.modules, "
        "'sqlalchemy': 'sqlalchemy' in sys.modules}))"
    )
    import os

    env = {**os.environ, **{k: v for k, v in busy.cli.env.items() if v is not None}}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    found = json.loads(done.stderr.strip().splitlines()[-1])
    assert found == {"code": 0, "mlflow": False, "sqlalchemy": False}, done.stderr
    doc = json.loads(done.stdout)
    assert doc["champion"]["version"] == 1 and doc["challenger"]["version"] == 2
    assert doc == busy.cli.json("status")  # the same answer as in-process
