"""The policy in force lives in the MLflow store (issue 19 item 1): a local file is only input to
`init` and `policy set`, a change needs a policy owner and leaves an audit event, proposals
made under an older version cannot be approved, and `audit verify` catches events made under an
unknown policy and stored texts edited behind the tool's back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from magenta_release.io.audit_log import EVENT_PREFIX, GENESIS, HEAD_TAG, Event
from tests.conftest import (
    ALICE,
    APPROVERS,
    BOB,
    CAROL,
    MALLORY,
    RELEASE_MANAGER,
    Trained,
    snapshot,
    write_policy,
)

MODEL = "churn-classifier"
LOG = f"{MODEL}-audit-log"


def _draft(t: Trained, folder: Path, **sections: dict[str, Any]) -> Path:
    """A policy file outside the store: the stored text with some sections replaced."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "release-policy.toml").write_text(t.cli.json("policy", "show")["toml"])
    return write_policy(folder, **sections)


def _set(t: Trained, path: Path, by: str, reason: str = "test") -> Any:
    return t.cli("policy", "set", str(path), "--reason", reason, by=by)


def test_a_policy_from_the_shell_does_not_let_alice_approve_her_own_proposal(
    trained: Trained, tmp_path: Path
) -> None:
    mine = _draft(trained, tmp_path / "mine", approval={"approvers": [ALICE], "four_eyes": False})
    own: dict[str, str | None] = {"MAGENTA_RELEASE_POLICY": str(mine)}
    proposed = trained.cli("propose", trained.runs["good"], "--json", by=ALICE, env=own)
    assert proposed.exit_code == 0, proposed.stderr
    assert json.loads(proposed.stdout)["version"] == 1
    result = trained.cli("approve", "1", "--reason", "mine", "--yes", by=ALICE, env=own)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "four eyes" in result.stderr
    assert trained.cli.json("status")["champion"] is None
    verified = trained.cli("audit", "verify", "--json", env=own)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["ok"] is True
    # every event was made under the stored policy, none under the file from the shell
    from magenta_release.core.policy import load_policy

    events = trained.cli.json("history")["events"]
    assert load_policy(mine).sha256 not in {e["policy_sha256"] for e in events}


def test_a_low_floor_policy_from_the_shell_does_not_get_a_weak_model_to_pending(
    trained: Trained, tmp_path: Path
) -> None:
    weak = trained.cli.json(
        "train", "--rows", "4000", "--seed", "7", "--param", "max_depth=1", "--param",
        "n_estimators=1", "--run-name", "weak",
    )  # fmt: skip
    assert weak["metrics"]["roc_auc"] < 0.65  # about 0.62: below the stored floor
    lax = _draft(
        trained,
        tmp_path / "lax",
        **{"gates.min": {"roc_auc": 0.0}, "gates.max_regression": {"roc_auc": 1.0}},
    )
    result = trained.cli(
        "propose", weak["run_id"], "--json", by=CAROL, env={"MAGENTA_RELEASE_POLICY": str(lax)}
    )
    assert result.exit_code == 1, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    assert doc["status"] == "gates_failed"
    assert [g["name"] for g in doc["gates"] if not g["passed"]] == ["min_roc_auc"]
    assert trained.cli.json("status")["pending"] == []


@pytest.mark.parametrize("who", [MALLORY, ALICE])  # nobody, and an approver who owns nothing
def test_policy_set_by_a_non_owner_is_refused_and_writes_nothing(
    trained: Trained, tmp_path: Path, who: str
) -> None:
    loose = _draft(trained, tmp_path / "loose", approval={"approvers": [who], "four_eyes": False})
    before = snapshot(trained.cli.home)
    result = _set(trained, loose, by=who)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert f"{who} is not one of the policy owners of '{MODEL}'" in result.stderr
    assert RELEASE_MANAGER in result.stderr  # who to ask
    assert snapshot(trained.cli.home) == before


def test_policy_set_by_an_owner_adds_a_version_with_an_audit_event(
    trained: Trained, tmp_path: Path
) -> None:
    before = trained.cli.json("policy", "history")["versions"]
    stricter = _draft(
        trained,
        tmp_path / "strict",
        approval={"approvers": [BOB], "policy_owners": [RELEASE_MANAGER], "four_eyes": True},
    )
    result = trained.cli.json(
        "policy", "set", str(stricter), "--reason", "only bob approves", by=RELEASE_MANAGER
    )
    assert result["changed"] is True and result["version"] == len(before) + 1
    assert result["previous"] == before[0]["sha256"]

    versions = trained.cli.json("policy", "history")["versions"]
    assert [v["version"] for v in versions] == list(range(len(before) + 1, 0, -1))
    newest = versions[0]
    assert (newest["set_by"], newest["reason"]) == (RELEASE_MANAGER, "only bob approves")
    assert newest["sha256"] == result["sha256"] and versions[1:] == before

    last = trained.cli.json("history")["events"][0]  # newest first
    assert (last["action"], last["actor"], last["reason"]) == (
        "policy_set",
        RELEASE_MANAGER,
        "only bob approves",
    )
    assert last["policy_sha256"] == result["sha256"]
    assert last["details"]["approvers"] == [BOB]
    assert trained.cli.json("audit", "verify")["ok"] is True

    # it governs from now on: alice is no longer an approver
    assert trained.cli.json("propose", trained.runs["good"], by=CAROL)["version"] == 1
    refused = trained.cli("approve", "1", "--reason", "x", "--yes", by=ALICE)
    assert refused.exit_code == 1 and "approver" in refused.stderr
    assert trained.cli.json("approve", "1", "--reason", "ok", "--yes", by=BOB)["champion"] == 1


def test_setting_the_same_file_again_changes_nothing(trained: Trained, tmp_path: Path) -> None:
    same = _draft(trained, tmp_path / "same")
    assert (tmp_path / "same" / "release-policy.toml").read_text() == trained.cli.json(
        "policy", "show"
    )["toml"]
    before = snapshot(trained.cli.home)
    history = trained.cli.json("policy", "history")
    result = trained.cli.json("policy", "set", str(same), "--reason", "again", by=RELEASE_MANAGER)
    assert result["changed"] is False and result["version"] == len(history["versions"])
    assert snapshot(trained.cli.home) == before
    assert trained.cli.json("policy", "history") == history


def test_a_version_proposed_under_an_older_policy_must_be_proposed_again(
    released: Trained, tmp_path: Path
) -> None:
    """v2 was proposed under the policy before this change: approve refuses, reject +
    propose again + approve works."""
    changed = _draft(
        released,
        tmp_path / "changed",
        approval={
            "approvers": APPROVERS,
            "policy_owners": [RELEASE_MANAGER],
            "four_eyes": True,
            "remind_after_days": 7,
        },
    )
    assert _set(released, changed, by=RELEASE_MANAGER).exit_code == 0
    stale = released.cli("approve", "2", "--reason", "go", "--yes", by=ALICE)
    assert stale.exit_code == 1, (stale.stdout, stale.stderr)
    assert "re-propose" in stale.stderr and "reject it" in stale.stderr
    assert released.cli.json("status")["champion"]["version"] == 1

    released.cli.json("reject", "2", "--reason", "policy changed", by=ALICE)
    again = released.cli.json("propose", released.runs["other"], by=CAROL)
    assert (again["version"], again["status"]) == (3, "pending_approval")
    assert released.cli.json("approve", "3", "--reason", "go", "--yes", by=ALICE)["champion"] == 3
    assert released.cli.json("audit", "verify")["ok"] is True


def _rewrite_log(home: Path, change: Any) -> None:
    """Edit the audit log's events in the SQLite store with `change(event_dict)` and recompute
    every hash and link, and the recorded head, so the chain itself still verifies (what an
    attacker with the database file can do: only the policy check is left to catch it)."""
    con = sqlite3.connect(home / "mlflow.db")
    with con:
        rows = con.execute(
            "select key, value from registered_model_tags where name = ? and key like ? "
            "order by key",
            (LOG, f"{EVENT_PREFIX}%"),
        ).fetchall()
        prev = GENESIS
        for key, value in rows:
            data = json.loads(value)
            change(data)
            data["prev_hash"] = prev
            draft = Event(**data)
            done = Event(**{**draft.body(), "hash": draft.compute_hash()})
            prev = done.hash
            con.execute(
                "update registered_model_tags set value = ? where name = ? and key = ?",
                (json.dumps(done.to_json()), LOG, key),
            )
        con.execute(
            "update registered_model_tags set value = ? where name = ? and key = ?",
            (f"{len(rows)}:{prev}", LOG.removesuffix("-audit-log"), HEAD_TAG),
        )
    con.close()


def test_audit_verify_reports_an_event_made_under_an_unknown_policy(released: Trained) -> None:
    events = released.cli.json("history")["events"]
    target = next(e["seq"] for e in events if e["action"] == "approve")
    forged = "f" * 64

    def bring_own_policy(data: dict[str, Any]) -> None:
        if data["seq"] == target:
            data["policy_sha256"] = forged

    _rewrite_log(released.cli.home, bring_own_policy)
    result = released.cli("audit", "verify", "--json")
    assert result.exit_code == 3, (result.stdout, result.stderr)
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["problems"] == [
        f"event {target} (approve): made under policy {forged[:12]}, which is not a recorded "
        "policy version (see: magenta-release policy history)"
    ]


def _stored_text(t: Trained, newest: int = 0) -> Path:
    """The artifact file holding a stored policy version (0: the one in force)."""
    run_id = t.cli.json("policy", "history")["versions"][newest]["run_id"]
    return next((t.cli.home / "artifacts").rglob(f"{run_id}/artifacts/release-policy.toml"))


def test_policy_show_prints_exactly_the_stored_text(trained: Trained, tmp_path: Path) -> None:
    text = (
        _draft(trained, tmp_path / "odd").read_text()
        + "\n\n# kept verbatim: comments, blank lines, no final newline  \t"
    )
    path = tmp_path / "odd" / "release-policy.toml"
    path.write_text(text)
    assert _set(trained, path, by=RELEASE_MANAGER).exit_code == 0
    shown = trained.cli("policy", "show")
    assert shown.exit_code == 0 and shown.stdout == text
    assert _stored_text(trained).read_text() == text


COMMANDS: list[tuple[str, ...]] = [
    ("status",),
    ("history",),
    ("runs",),
    ("policy", "show"),
    ("policy", "history"),
    ("init",),
    ("approve", "2", "--reason", "x", "--yes"),
    ("reject", "2", "--reason", "x"),
    ("rollback", "--reason", "x", "--yes"),
    ("propose", "RUN"),
    ("train", "--rows", "1000"),
    ("audit", "verify"),
]


def test_an_edited_stored_policy_is_an_integrity_alert_everywhere(
    released: Trained, tmp_path: Path
) -> None:
    stored = _stored_text(released)
    stored.write_text(stored.read_text().replace("four_eyes = true", "four_eyes = false"))
    verified = released.cli("audit", "verify")
    assert verified.exit_code == 3
    assert "policy version 2 of 'churn-classifier' does not match" in verified.stderr
    assert "was edited outside magenta-release" in verified.stderr
    lax = _draft_raw(tmp_path, stored.read_text())
    before = snapshot(released.cli.home)
    for command in [*COMMANDS, ("policy", "set", str(lax), "--reason", "x")]:
        args = [released.runs["worse"] if a == "RUN" else a for a in command]
        result = released.cli(*args, by=RELEASE_MANAGER if command[0] == "policy" else ALICE)
        assert result.exit_code == 3, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
    assert snapshot(released.cli.home) == before


def test_an_edited_older_policy_version_is_reported_by_audit_verify(released: Trained) -> None:
    old = _stored_text(released, newest=1)
    old.write_text(old.read_text() + "# edited\n")
    result = released.cli("audit", "verify", "--json")
    assert result.exit_code == 3, (result.stdout, result.stderr)
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 1 and problems[0].startswith(
        "the stored text of policy version 1 of 'churn-classifier' does not match"
    )
    assert released.cli("status").exit_code == 0  # the version in force is intact


def _draft_raw(folder: Path, text: str) -> Path:
    path = folder / "lax" / "release-policy.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text + "\n# lax\n")
    return path


def test_policy_set_for_another_model_governs_a_second_model(
    trained: Trained, tmp_path: Path
) -> None:
    second = _draft(
        trained,
        tmp_path / "prepaid",
        model={"registered_name": "churn-prepaid", "experiment": "churn-prepaid"},
    )
    before = trained.cli.json("policy", "history")
    done = trained.cli.json("policy", "set", str(second), "--reason", "new model", by=BOB)
    assert (done["model"], done["version"], done["changed"]) == ("churn-prepaid", 1, True)
    shown = trained.cli.json("policy", "show", "--model", "churn-prepaid")
    assert shown["toml"] == second.read_text() and shown["set_by"] == BOB
    assert trained.cli.json("policy", "history", "--model", MODEL) == before
    # the store now governs two models: a command that acts on one must be told which
    ambiguous = trained.cli("policy", "history")
    assert ambiguous.exit_code == 2
    assert "churn-classifier, churn-prepaid" in ambiguous.stderr
    # `policy set` of a file naming the first model still changes only the first
    wrong = trained.cli("policy", "set", str(second), "--reason", "x", "--model", MODEL, by=BOB)
    assert wrong.exit_code == 2 and "not --model churn-classifier" in wrong.stderr
    assert trained.cli.json("policy", "history", "--model", MODEL) == before


# ---- what the attack on this round found ---------------------------------------------------
@pytest.mark.parametrize(
    ("model", "why"),
    [
        ({"registered_name": "", "experiment": "x"}, "without surrounding spaces"),
        ({"registered_name": "churn-classifier-audit-log", "experiment": "x"}, "-audit-log"),
        ({"registered_name": "evil", "experiment": "magenta-release-policies"}, "policies"),
        ({"registered_name": "evil", "experiment": "churn-classifier-health"}, "-health"),
        ({"registered_name": "a/b", "experiment": "x"}, "'/'"),
        ({"registered_name": "churn-prepaid", "experiment": "churn"}, "holds the runs of model"),
        # look-alikes of the governed name (#25): case, a Cyrillic es, a zero-width space
        ({"registered_name": "Churn-Classifier", "experiment": "x"}, "reads as 'churn-classifier'"),
        ({"registered_name": "\u0441hurn-classifier", "experiment": "x"}, "reads as"),
        ({"registered_name": "churn-classifier\u200b", "experiment": "x"}, "invisible"),
    ],
)
def test_a_policy_naming_what_the_tool_or_another_model_owns_is_refused(
    trained: Trained, tmp_path: Path, model: dict[str, str], why: str
) -> None:
    """An empty name half-wrote a store; a model called `<x>-audit-log` wrote into x's log; a
    model training into the policies experiment (or sharing another model's) let its `gc`
    delete every stored policy or the other model's champion."""
    path = _draft(trained, tmp_path / "evil", model=model)
    before = snapshot(trained.cli.home)
    result = _set(trained, path, by=MALLORY)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert why in result.stderr
    assert snapshot(trained.cli.home) == before


def test_a_deleted_stored_policy_is_an_integrity_alert(trained: Trained) -> None:
    _stored_text(trained).unlink()
    for args in (("status",), ("policy", "show")):
        result = trained.cli(*args)
        assert result.exit_code == 3, (args, result.stderr)
        assert "was deleted" in result.stderr
    verify = trained.cli("audit", "verify", "--json")
    assert verify.exit_code == 3 and "was deleted" in verify.stdout


def test_a_policy_change_erased_with_its_head_is_still_found(
    trained: Trained, tmp_path: Path
) -> None:
    """Deleting the last event *and* the head used to read as a store from before heads: the
    policy change vanished and `audit verify` said ok. The stored policy run still names it."""
    # the trained fixture stored v2; erase that event and the head together
    con = sqlite3.connect(trained.cli.home / "mlflow.db")
    with con:
        (last,) = con.execute(
            "select max(key) from registered_model_tags where name = ? and key like ?",
            (LOG, f"{EVENT_PREFIX}%"),
        ).fetchone()
        con.execute("delete from registered_model_tags where name = ? and key = ?", (LOG, last))
        con.execute(
            "delete from registered_model_tags where name = ? and key = ?", (MODEL, HEAD_TAG)
        )
    con.close()
    verify = trained.cli("audit", "verify", "--json")
    assert verify.exit_code == 3
    assert "was stored (run" in verify.stdout and "has no event for it" in verify.stdout


def test_a_garbage_head_is_tampering(released: Trained) -> None:
    con = sqlite3.connect(released.cli.home / "mlflow.db")
    with con:
        con.execute(
            "update registered_model_tags set value = 'oops' where name = ? and key = ?",
            (MODEL, HEAD_TAG),
        )
    con.close()
    result = released.cli("status")
    assert result.exit_code == 3 and "is not SEQ:HASH" in result.stderr


def test_a_log_from_before_stored_policies_verifies_once_a_policy_is_stored(
    released: Trained,
) -> None:
    """A store made by the previous release: no policy_set event, no head. After `init`
    stores its policy, `audit verify` must not flag the events that predate it."""
    con = sqlite3.connect(released.cli.home / "mlflow.db")
    with con:
        rows = con.execute(
            "select key, value from registered_model_tags where name = ? and key like ? "
            "order by key",
            (LOG, f"{EVENT_PREFIX}%"),
        ).fetchall()
        con.execute(
            "delete from registered_model_tags where name = ? and key like ?",
            (LOG, f"{EVENT_PREFIX}%"),
        )
        con.execute(
            "delete from registered_model_tags where name = ? and key = ?", (MODEL, HEAD_TAG)
        )
        prev, seq = GENESIS, 0
        for _, value in rows:
            data = json.loads(value)
            if data["action"] == "policy_set":
                continue
            seq += 1
            data.update(seq=seq, prev_hash=prev, policy_sha256="0" * 64)  # a file's hash
            draft = Event(**data)
            done = Event(**{**draft.body(), "hash": draft.compute_hash()})
            prev = done.hash
            con.execute(
                "insert into registered_model_tags (key, value, name) values (?, ?, ?)",
                (f"{EVENT_PREFIX}{seq:08d}", json.dumps(done.to_json()), LOG),
            )
        con.execute(
            "delete from runs where experiment_id in (select experiment_id from "
            "experiments where name = 'magenta-release-policies')"
        )
    con.close()
    refused = released.cli("status")
    assert refused.exit_code == 2 and "run `magenta-release init`" in refused.stderr
    assert released.cli("init", by=RELEASE_MANAGER).exit_code == 0
    doc = released.cli.json("audit", "verify")
    assert doc["ok"] is True, doc


def test_card_and_health_take_model(released: Trained) -> None:
    assert released.cli.json("card", "1", "--model", MODEL)["version"] == 1
    assert "--model" in released.cli("health", "--help").stdout
