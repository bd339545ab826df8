"""The release loop through the CLI on a real store: gates, four eyes, integrity, staleness,
rollback, audit chain, serving by alias."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from magenta_release.cli.demo import write_customers
from tests.conftest import ALICE, APPROVERS, BOB, CAROL, MALLORY, Trained, write_policy


def _propose(t: Trained, name: str, code: int = 0) -> dict[str, Any]:
    return t.cli.json("propose", t.runs[name], by=CAROL, code=code)


def _approve(t: Trained, version: int, by: str = ALICE, code: int = 0) -> dict[str, Any]:
    return t.cli.json("approve", str(version), "--reason", "better", "--yes", by=by, code=code)


def _error(t: Trained, *args: str, by: str, code: int) -> str:
    result = t.cli(*args, by=by)
    assert result.exit_code == code, (result.stdout, result.stderr)
    # at most the embedded-identity warning, then exactly one error line
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _model_file(t: Trained, run_id: str) -> Path:
    return next(
        (t.cli.home / "artifacts").glob(f"*/{run_id}/artifacts/model/model.skops"), None
    ) or next((t.cli.home / "artifacts").rglob(f"{run_id}/**/model.skops"))


def test_first_proposal_passes_and_is_idempotent(trained: Trained) -> None:
    first = _propose(trained, "good")
    assert first["status"] == "pending_approval"
    assert first["version"] == 1
    names = {g["name"]: g["passed"] for g in first["gates"]}
    assert all(names.values())
    assert {
        "required_metrics",
        "min_roc_auc",
        "skops_format",
        "no_identifier_inputs",
        "input_schema",
        "no_regression",
        "sha256_manifest",
    } <= set(names)
    again = _propose(trained, "good")
    assert again["version"] == 1
    assert again["existing"] is True
    status = trained.cli.json("status")
    assert status["challenger"]["version"] == 1
    assert status["champion"] is None
    assert [p["version"] for p in status["pending"]] == [1]


def test_four_eyes_approvers_and_gates(trained: Trained) -> None:
    write_policy(trained.cli.home, approval={"approvers": [*APPROVERS, CAROL], "four_eyes": True})
    v = _propose(trained, "good")["version"]
    assert "four eyes" in _error(
        trained, "approve", str(v), "--reason", "x", "--yes", by=CAROL, code=1
    )
    refusal = _error(trained, "approve", str(v), "--reason", "x", "--yes", by=MALLORY, code=1)
    # names the file and the key to change
    assert "not in `approvers` under [approval]" in refusal
    assert "magenta-release policy set" in refusal
    done = _approve(trained, v)
    assert (done["champion"], done["status"], done["previous"]) == (v, "approved", None)

    # A worse candidate, re-scored against the champion on the same rows, fails the gates.
    worse = _propose(trained, "worse", code=1)
    assert worse["status"] == "gates_failed"
    failed = [g for g in worse["gates"] if not g["passed"]]
    regression = next(g for g in failed if g["name"] == "no_regression_roc_auc")
    assert "paired bootstrap 95% CI" in regression["detail"]
    runs = trained.cli.json("runs", "--last", "5")["runs"]
    eval_rows = next(r for r in runs if r["run_id"] == trained.runs["worse"])["metrics"][
        "eval_rows"
    ]
    assert f"on the same {int(eval_rows):,} rows" in regression["detail"]
    assert "gates_failed" in _error(
        trained, "approve", str(worse["version"]), "--reason", "x", "--yes", by=BOB, code=1
    )
    assert trained.cli.json("status")["champion"]["version"] == v


def test_floor_gate_fails_and_report_is_recorded(trained: Trained) -> None:
    import mlflow

    write_policy(trained.cli.home, **{"gates.min": {"roc_auc": 0.999}})
    doc = _propose(trained, "good", code=1)
    assert doc["status"] == "gates_failed"
    assert {g["name"] for g in doc["gates"] if not g["passed"]} == {"min_roc_auc"}
    client = mlflow.MlflowClient(f"sqlite:///{trained.cli.home / 'mlflow.db'}")
    mv = client.get_model_version("churn-classifier", str(doc["version"]))
    assert mv.tags["release.status"] == "gates_failed"
    assert "| min_roc_auc | **FAIL** |" in (mv.description or "")
    report = Path(
        client.download_artifacts(
            trained.runs["good"], "release/report.md", str(trained.cli.home.parent / "r")
        )
    )
    assert f"proposed by **{CAROL}**" in report.read_text()


def test_tampered_model_is_refused_by_approve_and_predict(trained: Trained, tmp_path: Path) -> None:
    v1 = _propose(trained, "good")["version"]
    _approve(trained, v1)
    v2 = _propose(trained, "other")["version"]
    customers = write_customers(tmp_path / "c.parquet", seed=3, rows=300)
    ok = trained.cli.json(
        "predict", "--input", str(customers), "--output", str(tmp_path / "p.parquet")
    )
    assert ok["model_version"] == v1
    assert ok["rows"] == 300

    for run in ("good", "other"):
        path = _model_file(trained, trained.runs[run])
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    assert "SHA-256 of model.skops does not match" in _error(
        trained, "approve", str(v2), "--reason", "x", "--yes", by=ALICE, code=3
    )
    assert "SHA-256 of model.skops" in _error(
        trained,
        "predict",
        "--input",
        str(customers),
        "--output",
        str(tmp_path / "q.parquet"),
        by=ALICE,
        code=3,
    )
    assert not (tmp_path / "q.parquet").exists()
    assert trained.cli.json("status")["champion"]["version"] == v1


def test_stale_proposal_rollback_and_audit_chain(trained: Trained) -> None:
    a = _propose(trained, "good")["version"]
    b = _propose(trained, "other")["version"]
    _approve(trained, b, by=BOB)
    # a was compared against "no champion"; the champion is now b
    assert "stale" in _error(trained, "approve", str(a), "--reason", "x", "--yes", by=ALICE, code=1)
    trained.cli.json("reject", str(a), "--reason", "stale", by=ALICE)
    # a rejected version is closed: its run gets a new version, judged against champion b
    again = _propose(trained, "good")
    assert again["version"] == b + 1 and again["champion"] == b, again
    assert _propose(trained, "good")["version"] == again["version"]  # pending: no duplicate
    trained.cli.json("reject", str(again["version"]), "--reason", "not now", by=ALICE)

    assert "no @previous" in _error(trained, "rollback", "--reason", "x", "--yes", by=ALICE, code=1)
    # rolling back needs a version that passed its gates: `a` was rejected
    assert "roll back only to" in _error(
        trained, "rollback", "--to", str(a), "--reason", "x", "--yes", by=ALICE, code=1
    )
    assert trained.cli.json("status")["champion"]["version"] == b

    everything = trained.cli.json("history", "--limit", "50")["events"]
    # init stored policy v1, the fixture v2: the releases follow
    assert [e["action"] for e in everything[-2:]] == ["policy_set", "policy_set"]
    events = everything[:-2]
    assert [e["action"] for e in events] == [
        "reject",
        "propose",
        "reject",
        "approve",
        "propose",
        "propose",
    ]
    assert events[3]["actor"] == BOB
    assert events[3]["champion_after"] == b
    assert all(len(e["policy_sha256"]) == 64 and e["prev_hash"] for e in events)
    assert trained.cli.json("audit", "verify")["ok"] is True


def test_rollback_restores_previous_champion(trained: Trained) -> None:
    v1 = _propose(trained, "good")["version"]
    _approve(trained, v1)
    v2 = _propose(trained, "other")
    assert v2["status"] == "pending_approval", v2["gates"]
    _approve(trained, v2["version"], by=BOB)
    status = trained.cli.json("status")
    assert status["champion"]["version"] == v2["version"]
    assert status["previous"]["version"] == v1
    assert status["versions"][-1]["status"] == "retired"
    back = trained.cli.json("rollback", "--reason", "complaints", "--yes", by=ALICE)
    # @previous is the champion the rollback replaced: predict can still reach it by alias
    assert (back["champion"], back["previous"]) == (v1, v2["version"])
    status = trained.cli.json("status")
    assert status["previous"]["version"] == v2["version"]
    statuses = {v["version"]: v["status"] for v in status["versions"]}
    assert statuses == {v1: "approved", v2["version"]: "rolled_back"}
    # and forward again to the rolled-back version, which once passed its gates
    fwd = trained.cli.json(
        "rollback", "--to", str(v2["version"]), "--reason", "fixed", "--yes", by=BOB
    )
    assert fwd["champion"] == v2["version"]
    assert trained.cli.json("audit", "verify") == {
        "ok": True,
        "events": 8,  # two policy versions, two proposals, approve, three champion moves
        "problems": [],
        "first_broken": None,
    }


def test_audit_verify_detects_an_edited_event_and_an_edited_tag(trained: Trained) -> None:
    v1 = _propose(trained, "good")["version"]
    _approve(trained, v1)
    db = trained.cli.home / "mlflow.db"
    con = sqlite3.connect(db)
    with con:
        key, value = con.execute(
            "select key, value from registered_model_tags where key = 'event.00000002'"
        ).fetchone()
        event = json.loads(value)
        event["actor"] = MALLORY
        con.execute(
            "update registered_model_tags set value = ? where key = ?", (json.dumps(event), key)
        )
    result = trained.cli("audit", "verify", "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["first_broken"].startswith("event 2: its content")
    with con:
        con.execute("update registered_model_tags set value = ? where key = ?", (value, key))
        con.execute(
            "update model_version_tags set value = 'retired' where "
            "key = 'release.status' and version = ?",
            (v1,),
        )
    con.close()
    doc = json.loads(trained.cli("audit", "verify", "--json").stdout)
    assert doc["ok"] is False
    assert "has status 'retired' but the log says 'approved'" in doc["first_broken"]


def test_mlflow_client_serves_the_champion_like_predict(trained: Trained, tmp_path: Path) -> None:
    import mlflow.pyfunc

    from magenta_release.core.synthetic import FEATURES

    v1 = _propose(trained, "good")["version"]
    _approve(trained, v1)
    customers = write_customers(tmp_path / "c.csv.parquet", seed=5, rows=500)
    csv = tmp_path / "c.csv"
    pd.read_parquet(customers).to_csv(csv, index=False)
    doc = trained.cli.json("predict", "--input", str(csv), "--output", str(tmp_path / "o.csv"))
    ours = pd.read_csv(tmp_path / "o.csv")
    assert (ours["model_version"] == v1).all()
    assert len(ours) == doc["rows"] == 500
    mlflow.set_tracking_uri(f"sqlite:///{trained.cli.home / 'mlflow.db'}")
    try:
        model = mlflow.pyfunc.load_model("models:/churn-classifier@champion")
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None restores the default
    frame = pd.read_parquet(customers).loc[:, list(FEATURES)]
    theirs = model.predict(frame)[:, 1]
    assert ours["churn_score"].to_numpy() == pytest.approx(theirs, abs=1e-6)  # CSV text round trip
    assert set(pd.read_parquet(customers)["rating_account_id"]) == set(ours["rating_account_id"])


def test_interactive_approval_shows_the_comparison_and_asks(trained: Trained) -> None:
    v1 = _propose(trained, "good")["version"]
    _approve(trained, v1)
    v2 = _propose(trained, "other")["version"]
    declined = trained.cli("approve", str(v2), "--reason", "x", by=BOB, input="n\n")
    assert declined.exit_code == 1
    assert "confirmation declined" in declined.stderr
    assert "challenger" in declined.stderr and "roc_auc" in declined.stderr  # the comparison
    assert trained.cli.json("status")["champion"]["version"] == v1
    accepted = trained.cli("approve", str(v2), "--reason", "x", by=BOB, input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert trained.cli.json("status")["champion"]["version"] == v2


def test_a_failed_decision_leaves_no_tag_saying_otherwise(
    released: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event is the decision: when it cannot be written, no `approved_by` or
    `rolled_back_by` may be left on a version (status would show a decision nobody made)."""
    from magenta_release.app.context import Context
    from magenta_release.app.decide import approve, rollback
    from magenta_release.core.errors import StoreUnreachable
    from magenta_release.core.settings import Settings
    from magenta_release.io import audit_log as audit

    home = released.cli.home
    real = audit.append

    def refusing(store: Any, log: Any, **event: Any) -> Any:
        if event["action"] in {"approve", "rollback"}:
            raise StoreUnreachable("the store refused the event (simulated)")
        return real(store, log, **event)

    def command(by: str | None = None) -> Context:
        return Context.open(Settings(home=home), by=by)

    def tags(version: int) -> dict[str, str]:
        return dict(command().registry.version(version).tags)

    with monkeypatch.context() as m:
        m.setattr(audit, "append", refusing)
        with pytest.raises(StoreUnreachable):
            approve(command(BOB), 2, reason="x")
    assert "release.approved_by" not in tags(2)
    pending = released.cli.json("status")["pending"]
    assert [p["version"] for p in pending] == [2]
    assert released.cli.json("audit", "verify")["ok"] is True

    assert released.cli.json("approve", "2", "--reason", "x", "--yes", by=BOB)["champion"] == 2
    assert tags(2)["release.approved_by"] == BOB
    with monkeypatch.context() as m:
        m.setattr(audit, "append", refusing)
        with pytest.raises(StoreUnreachable):
            rollback(command(ALICE), reason="x")
    assert "release.rolled_back_by" not in tags(2)
    back = released.cli.json("rollback", "--reason", "complaints", "--yes", by=ALICE)
    assert back["champion"] == 1
    # only the champion the rollback replaced is marked, with the event's actor and time
    assert tags(2)["release.rolled_back_by"] == ALICE
    assert "release.rolled_back_by" not in tags(1)
    assert released.cli.json("audit", "verify")["ok"] is True
