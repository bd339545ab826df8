"""Tampering and pickle: what is served is exactly what was approved, and never a pickle."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from magenta_release.cli.demo import write_customers
from tests.conftest import ALICE, CAROL, Trained, snapshot


def _model_dir(t: Trained, run: str) -> Path:
    return next((t.cli.home / "artifacts").rglob(f"{t.runs[run]}/artifacts/model"))


@pytest.fixture
def served(released: Trained, tmp_path: Path) -> dict[str, Any]:
    """The `released` store (v1 champion, v2 pending) and a customers file to score."""
    return {
        "t": released,
        "input": write_customers(tmp_path / "c.parquet", seed=1, rows=200),
        "out": tmp_path / "o.parquet",
    }


def _refused(r: dict[str, Any], *args: str, code: int = 3) -> str:
    result = r["t"].cli(*args, by=ALICE)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return str(result.stderr)


def _predict(r: dict[str, Any]) -> tuple[str, ...]:
    return ("predict", "--input", str(r["input"]), "--output", str(r["out"]))


def test_changed_mlmodel_is_detected(served: dict[str, Any]) -> None:
    mlmodel = _model_dir(served["t"], "good") / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("predict_proba", "predict"))
    assert "SHA-256 of MLmodel does not match" in _refused(served, *_predict(served))
    assert not served["out"].exists()


def test_swapped_model_file_is_detected(served: dict[str, Any]) -> None:
    t = served["t"]
    shutil.copyfile(_model_dir(t, "worse") / "model.skops", _model_dir(t, "other") / "model.skops")
    assert "SHA-256 of model.skops" in _refused(served, "approve", "2", "--reason", "x", "--yes")
    assert t.cli.json("status")["champion"]["version"] == 1


def test_added_file_is_detected(served: dict[str, Any]) -> None:
    (_model_dir(served["t"], "good") / "extra.py").write_text("print('hi')\n")
    assert "was added to the stored model" in _refused(served, *_predict(served))


def test_edited_manifest_tag_is_detected(served: dict[str, Any]) -> None:
    """An attacker who swaps the bytes and rewrites the manifest tag is still caught: the
    audit log holds the manifest's hash."""
    t = served["t"]
    model = _model_dir(t, "good") / "model.skops"
    model.write_bytes(model.read_bytes() + b"\0")
    con = sqlite3.connect(t.cli.home / "mlflow.db")
    with con:
        (raw,) = con.execute(
            "select value from model_version_tags where version = 1 and key = 'release.manifest'"
        ).fetchone()
        files = json.loads(raw)
        import hashlib

        files["model.skops"] = hashlib.sha256(model.read_bytes()).hexdigest()
        con.execute(
            "update model_version_tags set value = ? where version = 1 and "
            "key = 'release.manifest'",
            (json.dumps(files, sort_keys=True),),
        )
    con.close()
    assert "manifest hash differs" in _refused(served, *_predict(served))
    verify = t.cli("audit", "verify")
    assert verify.exit_code == 3


def test_edited_audit_event_is_detected(served: dict[str, Any]) -> None:
    t = served["t"]
    con = sqlite3.connect(t.cli.home / "mlflow.db")
    with con:
        (key,) = con.execute(
            "select key from registered_model_tags where value like '%\"baseline\"%'"
        ).fetchone()
        con.execute(
            "update registered_model_tags set value = replace(value, '\"baseline\"', "
            "'\"because\"') where key = ?",
            (key,),
        )
    con.close()
    doc = json.loads(t.cli("audit", "verify", "--json").stdout)
    assert doc["ok"] is False and doc["first_broken"].startswith(f"event {int(key[6:])}")


def _last_event_key(home: Path) -> str:
    con = sqlite3.connect(home / "mlflow.db")
    (key,) = con.execute(
        "select max(key) from registered_model_tags where key like 'event.%'"
    ).fetchone()
    con.close()
    return str(key)


def test_deleting_the_last_event_is_tampering_not_an_interrupted_command(
    served: dict[str, Any],
) -> None:
    """Without a second record of the head, a deleted last event (here v2's proposal) looks
    like a command that never finished, and repair would rebuild the state before it."""
    t = served["t"]
    key = _last_event_key(t.cli.home)
    con = sqlite3.connect(t.cli.home / "mlflow.db")
    with con:
        con.execute("delete from registered_model_tags where key = ?", (key,))
    con.close()
    before = snapshot(t.cli.home)
    for args in (
        ("status",),
        ("approve", "2", "--reason", "x", "--yes"),
        ("rollback", "--reason", "x", "--yes"),
        ("repair", "--reason", "looks interrupted"),
    ):
        assert "events were deleted" in _refused(served, *args), args
    assert snapshot(t.cli.home) == before  # nothing "repaired" into completion
    doc = json.loads(t.cli("audit", "verify", "--json").stdout)
    assert doc["ok"] is False and "events were deleted" in doc["first_broken"]


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"seq": "x"}', "null"])
def test_a_malformed_event_is_reported_and_crashes_nothing(
    served: dict[str, Any], garbage: str
) -> None:
    t = served["t"]
    key = _last_event_key(t.cli.home)
    con = sqlite3.connect(t.cli.home / "mlflow.db")
    with con:
        con.execute("update registered_model_tags set value = ? where key = ?", (garbage, key))
    con.close()
    before = snapshot(t.cli.home)
    for args in (
        ("propose", t.runs["worse"]),
        ("approve", "2", "--reason", "x", "--yes"),
        ("rollback", "--reason", "x", "--yes"),
        ("status",),
    ):
        errors = [line for line in _refused(served, *args).splitlines() if "error" in line]
        assert len(errors) == 1 and "audit log" in errors[0], (args, errors)
    # history still shows what verifies: it is how the damage is investigated
    shown = t.cli("history")
    assert shown.exit_code == 0 and "Traceback" not in shown.stderr
    assert snapshot(t.cli.home) == before
    verify = t.cli("audit", "verify", "--json")
    assert verify.exit_code == 3 and key in json.loads(verify.stdout)["first_broken"]


def test_a_deleted_event_is_detected(served: dict[str, Any]) -> None:
    t = served["t"]
    con = sqlite3.connect(t.cli.home / "mlflow.db")
    with con:
        con.execute("delete from registered_model_tags where key = 'event.00000002'")
    con.close()
    doc = json.loads(t.cli("audit", "verify", "--json").stdout)
    assert doc["ok"] is False and "sequence" in doc["first_broken"]


def _pickle_model(folder: Path) -> None:
    """Replace a run's model with the same pipeline saved as cloudpickle."""
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(folder))
    tmp = folder.with_name("pickled")
    mlflow.sklearn.save_model(model, str(tmp), serialization_format="cloudpickle")
    shutil.rmtree(folder)
    tmp.rename(folder)


def test_pickle_model_cannot_be_proposed(trained: Trained) -> None:
    _pickle_model(_model_dir(trained, "good"))
    result = trained.cli("propose", trained.runs["good"], by=CAROL)
    assert result.exit_code == 3
    assert "not skops" in result.stderr and "pickle can execute code" in result.stderr
    assert trained.cli.json("status")["versions"] == []


def test_pickle_model_cannot_be_served(served: dict[str, Any]) -> None:
    _pickle_model(_model_dir(served["t"], "good"))
    # the files no longer match the manifest: refused before anything is unpickled
    stderr = _refused(served, *_predict(served))
    assert stderr.startswith("error: version 1: ")
    assert "does not match the manifest" in stderr or "stored model" in stderr


def test_a_deleted_audit_log_is_tampering_never_a_fresh_store(released: Trained) -> None:
    """With its log gone, a released model must not read as "nothing governed here, run
    init": that invites someone to store a new first policy over a deleted record."""
    from mlflow import MlflowClient

    from magenta_release.core.settings import Settings

    settings = Settings(home=released.cli.home, tracking_uri=None)
    MlflowClient(settings.resolved_tracking_uri()).delete_registered_model(
        "churn-classifier-audit-log"
    )
    for args in (["status"], ["status", "--model", "churn-classifier"], ["history"]):
        result = released.cli(*args)
        assert result.exit_code == 3, (args, result.stdout, result.stderr)
        assert "no audit log" in result.stderr and "run init" not in result.stderr
