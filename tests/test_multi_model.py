"""Two registered models in one embedded store (issue 13 item 5): each has its own stored
policy (experiment, approvers, gates), champion, status, audit chain and release lock; commands
that act on one model must be told which; `status` and `audit verify` cover both."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from magenta_release.cli.demo import write_customers
from magenta_release.io.audit_log import GENESIS
from tests.conftest import (
    ALICE,
    APPROVERS,
    BOB,
    CAROL,
    RELEASE_MANAGER,
    SMALL,
    SMALL_DATA_GATES,
    Cli,
    Trained,
    copy_store,
    make_cli,
    snapshot,
    write_policy,
)

CLASSIFIER, PREPAID = "churn-classifier", "churn-prepaid"
BOTH = f"{CLASSIFIER}, {PREPAID}"


def _prepaid_policy(folder: Path) -> Path:
    """The second model's policy: its own experiment, bob its only approver and owner, and
    gates of its own (a lower floor, a wider allowed drop)."""
    return write_policy(
        folder,
        model={"registered_name": PREPAID, "experiment": PREPAID},
        approval={"approvers": [BOB], "policy_owners": [BOB], "four_eyes": True},
        **{"gates.min": {"roc_auc": 0.6}, "gates.max_regression": {"roc_auc": 0.08}},
    )


@pytest.fixture(scope="module")
def two_models_template(
    trained_template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The trained store plus `churn-prepaid` (two runs of its own), then interleaved:
    classifier v1 and prepaid v1 proposed, prepaid v1 approved by bob, classifier v1 by alice;
    prepaid v2 and classifier v2 proposed, classifier v2 approved by bob. Prepaid v2 is left
    pending. Everything proposed by carol."""
    root = tmp_path_factory.mktemp("two-models")
    home = copy_store(trained_template["home"], root / "mlruns")
    write_policy(home, approval={"approvers": APPROVERS, "four_eyes": True}, **SMALL_DATA_GATES)
    cli = make_cli(home)
    policy = _prepaid_policy(root / "prepaid")
    assert cli.json("policy", "set", str(policy), "--reason", "second model", by=BOB)["changed"]
    runs = {f"classifier-{k}": v for k, v in trained_template["runs"].items()}
    for name, depth in (("prepaid-a", "2"), ("prepaid-b", "3")):
        runs[name] = cli.json(
            "train", "--model", PREPAID, "--rows", str(SMALL), "--seed", "11", "--param",
            f"max_depth={depth}", "--run-name", name, by=CAROL,
        )["run_id"]  # fmt: skip

    def propose(model: str, run: str) -> int:
        doc = cli.json("propose", runs[run], "--model", model, by=CAROL)
        assert doc["status"] == "pending_approval", doc["gates"]
        return int(doc["version"])

    def approve(model: str, version: int, by: str) -> None:
        doc = cli.json("approve", str(version), "--model", model, "--reason", "ok", "--yes", by=by)
        assert doc["champion"] == version

    assert propose(CLASSIFIER, "classifier-good") == 1
    assert propose(PREPAID, "prepaid-a") == 1
    approve(PREPAID, 1, BOB)
    approve(CLASSIFIER, 1, ALICE)
    assert propose(PREPAID, "prepaid-b") == 2
    assert propose(CLASSIFIER, "classifier-other") == 2
    approve(CLASSIFIER, 2, BOB)
    return {"home": home, "runs": runs}


@pytest.fixture
def two(two_models_template: dict[str, Any], tmp_path: Path) -> Trained:
    home = copy_store(two_models_template["home"], tmp_path / "mlruns")
    return Trained(make_cli(home), dict(two_models_template["runs"]))


def _history(cli: Cli, model: str) -> list[dict[str, Any]]:
    """A model's audit events, oldest first."""
    return list(reversed(cli.json("history", "--model", model)["events"]))


def test_each_model_has_its_own_champion_status_history_and_chain(two: Trained) -> None:
    classifier = two.cli.json("status", "--model", CLASSIFIER)
    prepaid = two.cli.json("status", "--model", PREPAID)
    assert classifier["registered_model"] == CLASSIFIER and prepaid["registered_model"] == PREPAID
    assert (classifier["champion"]["version"], classifier["previous"]["version"]) == (2, 1)
    assert classifier["challenger"] is None and classifier["pending"] == []
    assert (prepaid["champion"]["version"], prepaid["challenger"]["version"]) == (1, 2)
    assert prepaid["previous"] is None
    assert [p["version"] for p in prepaid["pending"]] == [2]
    runs_of = {doc["registered_model"]: {v["run_id"] for v in doc["versions"]} for doc in (
        classifier, prepaid)}  # fmt: skip
    assert runs_of == {
        CLASSIFIER: {two.runs["classifier-good"], two.runs["classifier-other"]},
        PREPAID: {two.runs["prepaid-a"], two.runs["prepaid-b"]},
    }

    c_log, p_log = _history(two.cli, CLASSIFIER), _history(two.cli, PREPAID)
    # init's policy (set by the OS login), the test policy, then the interleaved releases
    assert [(e["action"], e["version"]) for e in c_log[:2]] == [("policy_set", None)] * 2
    assert [(e["action"], e["version"], e["actor"]) for e in c_log[1:]] == [
        ("policy_set", None, RELEASE_MANAGER),
        ("propose", 1, CAROL),
        ("approve", 1, ALICE),
        ("propose", 2, CAROL),
        ("approve", 2, BOB),
    ]
    assert [(e["action"], e["version"], e["actor"]) for e in p_log] == [
        ("policy_set", None, BOB),
        ("propose", 1, CAROL),
        ("approve", 1, BOB),
        ("propose", 2, CAROL),
    ]
    for log in (c_log, p_log):  # two chains, each from genesis, sharing no event
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
        assert log[0]["prev_hash"] == GENESIS
        assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(log))
    assert not {e["hash"] for e in c_log} & {e["hash"] for e in p_log}
    # every event was made under its own model's policy
    c_policies = {v["sha256"] for v in two.cli.json("policy", "history", "--model", CLASSIFIER)[
        "versions"]}  # fmt: skip
    p_policies = {v["sha256"] for v in two.cli.json("policy", "history", "--model", PREPAID)[
        "versions"]}  # fmt: skip
    assert {e["policy_sha256"] for e in c_log} <= c_policies
    assert {e["policy_sha256"] for e in p_log} <= p_policies and not c_policies & p_policies
    for model, log in ((CLASSIFIER, c_log), (PREPAID, p_log)):
        verified = two.cli.json("audit", "verify", "--model", model)
        assert (verified["ok"], verified["events"]) == (True, len(log))


def test_status_and_audit_verify_without_model_cover_both(two: Trained) -> None:
    status = two.cli.json("status")
    assert [m["registered_model"] for m in status["models"]] == [CLASSIFIER, PREPAID]
    assert [m["champion"]["version"] for m in status["models"]] == [2, 1]
    assert [[p["version"] for p in m["pending"]] for m in status["models"]] == [[], [2]]
    human = two.cli("status")
    assert human.exit_code == 0 and CLASSIFIER in human.stdout and PREPAID in human.stdout

    verified = two.cli.json("audit", "verify")
    assert verified["ok"] is True
    assert {name: (r["ok"], r["events"]) for name, r in verified["models"].items()} == {
        CLASSIFIER: (True, len(_history(two.cli, CLASSIFIER))),
        PREPAID: (True, len(_history(two.cli, PREPAID))),
    }


@pytest.mark.parametrize(
    "command",
    [
        ("history",),
        ("policy", "show"),
        ("approve", "2", "--reason", "x", "--yes"),
        ("reject", "2", "--reason", "x"),
        ("rollback", "--reason", "x", "--yes"),
        ("train", "--rows", "1000"),
    ],
)
def test_a_command_for_one_model_without_model_exits_2_naming_both(
    two: Trained, command: tuple[str, ...]
) -> None:
    before = snapshot(two.cli.home)
    result = two.cli(*command, by=BOB)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert f"this store governs several models ({BOTH})" in result.stderr
    assert "pass --model NAME or set MAGENTA_RELEASE_MODEL" in result.stderr
    assert snapshot(two.cli.home) == before


def test_magenta_release_model_selects_one(two: Trained) -> None:
    env: dict[str, str | None] = {"MAGENTA_RELEASE_MODEL": PREPAID}
    for args in (("status",), ("history",), ("audit", "verify")):
        result = two.cli(*args, "--json", env=env)
        assert result.exit_code == 0, result.stderr
        assert "models" not in result.stdout  # one model's document, not the list
    status = two.cli("status", "--json", env=env)
    assert '"registered_model": "churn-prepaid"' in status.stdout
    approved = two.cli("approve", "2", "--reason", "ok", "--yes", "--json", by=BOB, env=env)
    assert approved.exit_code == 0, approved.stderr
    assert two.cli.json("status", "--model", PREPAID)["champion"]["version"] == 2
    assert two.cli.json("status", "--model", CLASSIFIER)["champion"]["version"] == 2
    assert _history(two.cli, CLASSIFIER)[-1]["action"] == "approve"  # untouched: still v2's


def test_approvers_are_per_model(two: Trained) -> None:
    """alice approves the classifier but is not in the prepaid policy's approvers."""
    refused = two.cli("approve", "2", "--model", PREPAID, "--reason", "x", "--yes", by=ALICE)
    assert refused.exit_code == 1, (refused.stdout, refused.stderr)
    assert "approver" in refused.stderr
    assert two.cli.json("status", "--model", PREPAID)["champion"]["version"] == 1


def _scores(two: Trained, tmp_path: Path, model: str) -> pd.DataFrame:
    customers = tmp_path / "customers.parquet"
    if not customers.exists():
        write_customers(customers, seed=1, rows=300)
    out = tmp_path / f"{model.replace('/', '-').replace('@', '-at-')}.parquet"
    doc = two.cli.json("predict", "--input", str(customers), "--output", str(out), "--model", model)
    assert doc["rows"] == 300
    return pd.read_parquet(out)


def test_predict_names_the_model_and_scores_with_its_champion(two: Trained, tmp_path: Path) -> None:
    prepaid = _scores(two, tmp_path, f"{PREPAID}@champion")
    assert set(prepaid["model_name"]) == {PREPAID} and set(prepaid["model_version"]) == {1}
    pd.testing.assert_series_equal(
        prepaid["churn_score"], _scores(two, tmp_path, f"{PREPAID}/1")["churn_score"]
    )
    for other in (f"{CLASSIFIER}@champion", f"{CLASSIFIER}/1"):
        assert not prepaid["churn_score"].equals(_scores(two, tmp_path, other)["churn_score"])
    classifier = _scores(two, tmp_path, f"{CLASSIFIER}@champion")
    assert set(classifier["model_name"]) == {CLASSIFIER}
    assert set(classifier["model_version"]) == {2}


def test_one_models_release_lock_does_not_block_the_other(two: Trained) -> None:
    from magenta_release.core.settings import Settings
    from magenta_release.io.lock import lock_held, release_lock
    from magenta_release.io.store import Store

    store = Store.open(Settings(home=two.cli.home, tracking_uri=None))
    with release_lock(store, CLASSIFIER):
        assert lock_held(store, CLASSIFIER) and not lock_held(store, PREPAID)
        done = two.cli.json("approve", "2", "--model", PREPAID, "--reason", "ok", "--yes", by=BOB)
        assert done["champion"] == 2
        assert lock_held(store, CLASSIFIER)  # the other model's approval left this lock alone
    assert not lock_held(store, CLASSIFIER)
    assert two.cli.json("audit", "verify")["ok"] is True
