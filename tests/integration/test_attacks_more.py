"""More attacks on the release authority (issue 25, second round), against a real PostgreSQL and
`mlflow server` with the plugin and `default_permission = READ`, as the deploy image runs it.

The request shapes of the first round (test_attacks.py) are refused now; these go through the
front door: the authority's own endpoints, `POST /api/2.0/magenta-release/<action>`, which take
the caller from MLflow's authentication and then decide. The people are the same: carol
proposes (EDIT on the model, its log and its experiment), alice and bob approve, mallory has no
grant at all (READ, the default). Each test is written as the attacker would write it (raw
HTTP, the evidence format read off the store; nothing imported from magenta_release) and
asserts the SAFE outcome, so it fails where the hole is open.

The module reuses test_attacks' `world` and `released` fixtures (its own server)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.integration import test_attacks
from tests.integration.attacker import API, Attacker, canonical
from tests.integration.test_attacks import MODEL, Released, World, run

# test_attacks' module fixtures: one server of this module's own, churn-classifier released
world = test_attacks.world
released = test_attacks.released

pytestmark = [pytest.mark.server, pytest.mark.xdist_group(name="server")]

AUTHORITY = "/api/2.0/magenta-release"


def forged_evidence(attacker: Attacker, version: int, **change: Any) -> dict[str, Any]:
    """The evidence recorded for `version` (readable by anyone with READ), as a dict to edit:
    its run, champion, policy hash and manifest digest are what the authority compares."""
    tags = attacker.versions(MODEL)[version]["tags"]
    evidence: dict[str, Any] = json.loads(tags["release.evidence"])
    evidence.update(change)
    return evidence


def propose(attacker: Attacker, run_id: str, evidence: dict[str, Any]) -> Any:
    return attacker.http(
        "POST",
        f"{AUTHORITY}/propose",
        body={
            "model": MODEL,
            "run_id": run_id,
            "source": f"runs:/{run_id}/model",
            "evidence": canonical(evidence),
            "note": "",
        },
    )


# ---- a READ-only user writes governed version tags through `notified` ------------------------
def test_a_read_only_user_cannot_record_notification_outcomes(
    world: World, released: Released
) -> None:
    """mallory (no grant) posts a notification outcome for the champion's `approved` event:
    the authority writes it as the version tag `release.notify.approved`, and `status` then
    reports a delivery failure that never happened (or, overwriting a real failure with an ok
    one, hides it). Only whoever delivered the notification of a decision (its actor's client)
    may record it."""
    mallory = world.as_("mallory")
    champion = mallory.aliases(MODEL)["champion"]
    before = mallory.versions(MODEL)[champion]["tags"]
    r = mallory.http(
        "POST",
        f"{AUTHORITY}/notified",
        body={
            "model": MODEL,
            "version": champion,
            "event": "approved",
            "outcome": {
                "at": "2026-12-04T09:00:00+00:00",
                "deliveries": [
                    {"webhook": "release-chat", "ok": False, "error": "HTTP 410: space deleted"}
                ],
            },
        },
    )
    after = mallory.versions(MODEL)[champion]["tags"]
    status = run(released.cli, "status", "--json", by="alice")
    assert r.status_code >= 400 and after == before, (
        f"mallory (READ only) wrote the tags of governed version {champion} (HTTP "
        f"{r.status_code}): {after.get('release.notify.approved')}; status now reports "
        f"{json.loads(status.stdout).get('notify_failures') if status.exit_code == 0 else '?'}"
    )


# ---- a READ-only user appends to the audit log through `repair` --------------------------------
def test_a_read_only_user_cannot_append_repair_events(world: World, released: Released) -> None:
    """With nothing to repair, mallory calls `repair` naming runs she claims to have marked
    FAILED: the authority appends a `repair` event by mallory to the hash-chained record (as
    often as she likes, each up to the tag limit) although nothing was checked and nothing
    changed. Repair is for the people who run releases, and `failed_runs` must be runs the
    server sees FAILED in the model's experiment."""
    mallory = world.as_("mallory")
    before = mallory.events(MODEL)
    r = mallory.http(
        "POST",
        f"{AUTHORITY}/repair",
        body={
            "model": MODEL,
            "reason": "routine consistency check after the incident",
            "failed_runs": [released.runs["good"], "x" * 400],
        },
    )
    after = mallory.events(MODEL)
    added = [(e["action"], e["actor"], e["details"]) for e in after[len(before) :]]
    assert r.status_code >= 400 and after == before, (
        f"mallory (READ only) appended {len(after) - len(before)} event(s) to the audit log "
        f"(HTTP {r.status_code}): {added}"
    )


# ---- a READ-only user proposes, and moves @challenger ---------------------------------------
def test_a_read_only_user_cannot_propose(world: World, released: Released) -> None:
    """mallory, with no grant on the model or its experiment, proposes carol's gates_failed
    run `worse` again through the authority, with its recorded evidence edited so every gate
    passes. The authority takes any authenticated caller: a new version `proposed_by`
    mallory, pending approval, becomes @challenger in place of bob's pending proposal and is
    announced to the approvers. Creating a version used to need EDIT on the model; the
    authority must check that the caller may propose to this model (a grant, or a proposers
    list in the policy)."""
    mallory = world.as_("mallory")
    before = mallory.snapshot(MODEL)
    evidence = forged_evidence(mallory, released.v["worse"])
    for gate in evidence["gates"]:
        gate["passed"] = True
    r = propose(mallory, released.runs["worse"], evidence)
    after = mallory.snapshot(MODEL)
    new = sorted(set(after["versions"]) - set(before["versions"]))
    assert r.status_code >= 400 and not new, (
        f"mallory (READ only) proposed version(s) {new} (HTTP {r.status_code}, "
        f"{r.text[:120]}); @challenger was {before['aliases'].get('challenger')}, is now "
        f"{after['aliases'].get('challenger')}"
    )
    assert after["aliases"] == before["aliases"]


# ---- a gates_failed run proposed again and again -----------------------------------------------
def test_a_gates_failed_run_is_not_proposed_again_under_the_same_policy_champion_and_files(
    world: World, released: Released
) -> None:
    """`judged_alike` lets a gates_failed run be proposed again only when it would be judged
    otherwise (policy, champion or data changed), but it compares the gates the *caller*
    sends: carol re-proposes her `worse2` run five times, changing only a gate's free-text
    detail, under the same policy, champion and model files. Each call registers a new
    version, a new copy of the model files in magenta-release-releases and a new event; a
    loop fills the store and the log without bound (anyone may do it: see the test above)."""
    carol = world.as_("carol")
    v = released.v["worse2"]
    before = set(carol.versions(MODEL))
    events = len(carol.events(MODEL))
    codes = []
    for i in range(5):
        evidence = forged_evidence(carol, v)
        evidence["gates"][0]["detail"] = f"{evidence['gates'][0]['detail']} (attempt {i})"
        codes.append(propose(carol, released.runs["worse2"], evidence).status_code)
    new = sorted(set(carol.versions(MODEL)) - before)
    assert len(new) <= 1, (
        f"the same run, policy, champion and files were registered {len(new)} more times "
        f"(versions {new}, HTTP {codes}); the log grew by "
        f"{len(carol.events(MODEL)) - events} events"
    )


# ---- a proposal's evidence is bounded -----------------------------------------------------------
def test_a_proposals_evidence_is_bounded(world: World, released: Released) -> None:
    """carol re-proposes her rejected-or-failed run with a 6,000-character gate detail: the
    authority stores whatever evidence the caller sends as a version tag and hashes it into
    the log, so it must bound it (core/limits) before anything is registered."""
    carol = world.as_("carol")
    before = carol.snapshot(MODEL)
    evidence = forged_evidence(carol, released.v["worse2"])
    evidence["gates"][0]["detail"] = "x" * 6000
    r = propose(carol, released.runs["worse2"], evidence)
    assert r.status_code == 400 and "2,000" in r.text, (r.status_code, r.text[:200])
    assert carol.snapshot(MODEL) == before


# ---- a READ-only user governs a look-alike of a governed name --------------------------------
LOOK_ALIKES = {
    "case": "Churn-Classifier",
    "unicode-hyphen": "churn\u2010classifier",  # HYPHEN, not HYPHEN-MINUS
    "zero-width-space": "churn-classifier\u200b",  # invisible in the UI and the terminal
    "cyrillic-es": "\u0441hurn-classifier",
}


@pytest.mark.parametrize("variant", list(LOOK_ALIKES))
def test_a_look_alike_of_a_governed_name_cannot_be_governed_by_anyone(
    world: World, released: Released, variant: str
) -> None:
    """A model's first policy may be stored by whoever may create the registered model, which
    under `default_permission = READ` is everyone: mallory stores a first policy for a name
    that reads as `churn-classifier` (case, a Unicode hyphen, a zero-width space, a Cyrillic
    letter) naming herself the only owner and approver with four eyes off. She can then
    propose and approve alone, and the UI, `status --model` and every notification show a
    released `churn-classifier` champion that no second person saw. A name that folds (NFKC,
    case, invisible characters, confusables) onto a governed name must be refused."""
    mallory = world.as_("mallory")
    name = LOOK_ALIKES[variant]
    text = world.policy(MODEL, owners=("alice",)).read_text()
    text = text.replace(f'registered_name = "{MODEL}"', f'registered_name = "{name}"')
    text = text.replace(f'experiment = "{MODEL}"', f'experiment = "{name}-runs"')
    text = text.replace("four_eyes = true", "four_eyes = false")
    for who in ("approvers", "policy_owners"):
        text = re.sub(rf"{who} = \[[^\]]*\]", f'{who} = ["mallory"]', text)
    assert f'registered_name = "{name}"' in text and 'approvers = ["mallory"]' in text, text
    r = mallory.http(
        "POST",
        f"{AUTHORITY}/policy-set",
        body={"model": name, "text": text, "reason": "team model"},
    )
    governed = mallory.model(f"{name}-audit-log") is not None
    assert r.status_code >= 400 and not governed, (
        f"mallory (READ only) governs {name!r}, a look-alike of {MODEL!r}, as its only owner "
        f"and approver with four eyes off (HTTP {r.status_code}: {r.text[:160]})"
    )


# ---- the proposer moves the model's experiment away (last: it blocks churn-classifier) ----------
def test_the_proposer_cannot_move_the_governed_models_experiment_away(
    world: World, released: Released
) -> None:
    """The policy names the model's training experiment by name, and nothing guards that
    experiment: carol (EDIT on it) renames it and creates a new, empty experiment with the old
    name (she now holds MANAGE on it). Every pending proposal becomes unapprovable
    (`run ... is not in experiment 'churn-classifier'`, exit 2), while `status` and `audit
    verify` still report ok. Renaming or deleting a governed model's experiment, or creating
    one with its name, must be refused (or the log must pin the experiment by id)."""
    carol = world.as_("carol")
    experiment = world.experiment_id(MODEL)
    renamed = carol.http(
        "POST",
        f"{API}/experiments/update",
        body={"experiment_id": experiment, "new_name": f"{MODEL}-archive"},
    )
    created = carol.http("POST", f"{API}/experiments/create", body={"name": MODEL})
    approve = run(
        released.cli,
        "approve",
        str(released.v["other"]),
        "--reason",
        "looks good",
        "--yes",
        by="alice",
    )
    verify = run(released.cli, "audit", "verify", by="alice")
    assert renamed.status_code >= 400 and world.experiment_id(MODEL) == experiment, (
        f"carol renamed the experiment of {MODEL} (HTTP {renamed.status_code}) and created a "
        f"new one under its name (HTTP {created.status_code}); alice's approve of v"
        f"{released.v['other']} exited {approve.exit_code}: {approve.stderr.strip()[-160:]}; "
        f"audit verify exited {verify.exit_code}: {verify.stdout.strip()[-80:]}"
    )
