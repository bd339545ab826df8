"""Notifications and approval expiry (issue 16, items 1 and 2) on real stores, with a real
HTTP receiver on 127.0.0.1 standing in for the Slack, Google Chat and signed webhooks. The
receiver checks signatures with its own HMAC code, following the scheme `notify` documents."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import Trained, set_stored_policy

SECRET = "test-signing-secret"
CAROL, ALICE, BOB = "carol", "alice", "bob"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def event(self) -> str:
        return self.headers["X-Magenta-Release-Event"]

    def verified(self) -> dict[str, Any]:
        """The body, after checking the signature as a receiver must: HMAC-SHA256 of
        timestamp + "." + raw body, constant-time comparison, fresh timestamp."""
        timestamp = self.headers["X-Magenta-Release-Timestamp"]
        mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + self.body, hashlib.sha256)
        assert hmac.compare_digest(
            self.headers["X-Magenta-Release-Signature"], "v1=" + mac.hexdigest()
        )
        assert abs(datetime.now(UTC).timestamp() - int(timestamp)) < 300  # replay window
        doc: dict[str, Any] = json.loads(self.body)
        return doc


class Receiver:
    """A webhook endpoint on 127.0.0.1: records every POST; answers with queued statuses
    (then 200)."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.statuses: list[int] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    outer.messages.append(Received(self.path, dict(self.headers), body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str, event: str | None = None) -> list[Received]:
        return [
            m for m in self.messages if m.path == path and (event is None or m.event() == event)
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def configure(t: Trained, hooks: list[dict[str, Any]], store: bool = True, **settings: Any) -> Path:
    """Add a [notify] section (and [approval] keys) to the policy file; store it unless
    `store` is False (then only the file is written)."""
    path = t.cli.home / "release-policy.toml"
    data = tomllib.loads(path.read_text())
    data["approval"].update(settings.pop("approval", {}))
    data["notify"] = {"timeout_seconds": 5, "backoff_seconds": 0.01, **settings}
    data["notify"]["webhooks"] = hooks
    path.write_text(tomli_w.dumps(data))
    if store:
        set_stored_policy(t.cli.home, path)
    return path


def three_hooks(t: Trained, receiver: Receiver) -> None:
    """A Slack and a Google Chat webhook whose URLs come from the environment, and a signed
    endpoint; the chat one is signed too, Slack is not."""
    t.cli.env["TEST_SLACK_URL"] = receiver.url("/slack")
    t.cli.env["TEST_CHAT_URL"] = receiver.url("/chat")
    t.cli.env["TEST_WEBHOOK_SECRET"] = SECRET
    configure(
        t,
        [
            {"name": "slack", "kind": "slack", "url_env": "TEST_SLACK_URL"},
            {
                "name": "chat",
                "kind": "google_chat",
                "url_env": "TEST_CHAT_URL",
                "secret_env": "TEST_WEBHOOK_SECRET",
            },
            {
                "name": "bot",
                "kind": "signed",
                "url": receiver.url("/signed"),
                "secret_env": "TEST_WEBHOOK_SECRET",
            },
        ],
    )


def _propose(t: Trained, name: str, code: int = 0) -> int:
    doc = t.cli.json(
        "propose", t.runs[name], "--note", "customer 1.234567 asked", by=CAROL, code=code
    )
    return int(doc["version"])


def _approve(t: Trained, version: int, by: str = ALICE, code: int = 0) -> Any:
    return t.cli.json("approve", str(version), "--reason", "better", "--yes", by=by, code=code)


def _client(t: Trained) -> Any:
    import mlflow

    return mlflow.MlflowClient(f"sqlite:///{t.cli.home / 'mlflow.db'}")


def _age(t: Trained, version: int, days: float) -> None:
    """Pretend the version was proposed `days` ago (the tag the age is read from)."""
    when = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    _client(t).set_model_version_tag("churn-classifier", str(version), "release.proposed_at", when)


def _tag(t: Trained, version: int, key: str) -> Any:
    mv = _client(t).get_model_version("churn-classifier", str(version))
    return json.loads(mv.tags[key])


def _check_message(m: Received, event: str, version: int | None) -> None:
    """Every shape carries the title, the exact next command and no customer data."""
    assert m.event() == event
    doc = m.verified() if "X-Magenta-Release-Signature" in m.headers else json.loads(m.body)
    text = doc["text"]
    assert "churn-classifier" in text
    if version is not None:
        assert f"v{version}" in text
    # no rows, identifiers or free text: the note held a customer number
    for secret in ("1.234567", "customer_id", "rating_account_id", "better"):
        assert secret not in m.body.decode()
    if m.path == "/slack":
        assert doc["blocks"][0]["type"] == "header"
    if m.path == "/chat":
        assert doc["cardsV2"][0]["card"]["header"]["title"].startswith("churn-classifier")
    if m.path == "/signed":
        assert doc["event"] == event
        assert doc["version"] == version
        assert doc["model"] == "churn-classifier"


def test_every_event_sends_one_signed_message_per_webhook(
    trained: Trained, receiver: Receiver
) -> None:
    three_hooks(trained, receiver)
    v1 = _propose(trained, "good")
    _approve(trained, v1)
    v2 = _propose(trained, "other")
    _approve(trained, v2, by=BOB)
    trained.cli.json("rollback", "--reason", "drop in campaign", "--yes", by=ALICE)
    v3 = _propose(trained, "worse", code=1)  # gates_failed against v1

    expected = [
        ("proposed", v1),
        ("approved", v1),
        ("proposed", v2),
        ("approved", v2),
        ("rolled_back", v1),
        ("gates_failed", v3),
    ]
    for path in ("/slack", "/chat", "/signed"):
        got = receiver.at(path)
        assert [m.event() for m in got] == [e for e, _ in expected], path
        for m, (event, version) in zip(got, expected, strict=True):
            _check_message(m, event, version)
    assert not any("X-Magenta-Release-Signature" in m.headers for m in receiver.at("/slack"))

    proposed = receiver.at("/signed", "proposed")[0].verified()
    assert proposed["actor"] == CAROL
    assert "magenta-release approve 1 --model churn-classifier --reason ..." in proposed["commands"]
    assert "magenta-release reject 1 --model churn-classifier --reason ..." in proposed["commands"]
    assert "no_regression" in proposed["gates"]["passed"]
    assert proposed["gates"]["failed"] == []
    # a local store has no UI URL: the message says how to open the version
    assert proposed["link"] is None
    assert "magenta-release ui" in proposed["text"]
    assert "/#/models/churn-classifier/versions/1" in proposed["text"]
    approved = receiver.at("/signed", "approved")[1].verified()
    assert (approved["actor"], approved["champion_before"], approved["champion_after"]) == (
        BOB,
        v1,
        v2,
    )
    rolled = receiver.at("/signed", "rolled_back")[0].verified()
    assert (rolled["champion_before"], rolled["champion_after"]) == (v2, v1)
    failed = receiver.at("/signed", "gates_failed")[0].verified()
    assert "no_regression_roc_auc" in failed["gates"]["failed"]
    assert not any("approve" in c for c in failed["commands"])
    # the outcome is recorded on the version, one delivery per webhook
    record = _tag(trained, v1, "release.notify.approved")
    assert record["ok"] is True
    assert sorted(d["webhook"] for d in record["deliveries"]) == ["bot", "chat", "slack"]
    # a rerun of a proposal or approval does not notify again
    before = len(receiver.messages)
    _propose(trained, "good")
    assert len(receiver.messages) == before


def test_receiver_down_the_release_completes_and_status_shows_it(trained: Trained) -> None:
    configure(
        trained,
        [{"name": "ops-chat", "kind": "google_chat", "url": f"http://127.0.0.1:{closed_port()}/x"}],
    )
    v = _propose(trained, "good")
    done = _approve(trained, v)
    assert (done["champion"], done["status"]) == (v, "approved")
    record = _tag(trained, v, "release.notify.approved")
    assert record["ok"] is False
    [delivery] = record["deliveries"]
    assert delivery["webhook"] == "ops-chat"
    assert delivery["attempts"] == 3  # bounded retries, then given up
    assert "refused" in delivery["error"].lower()
    status = trained.cli.json("status")
    assert status["champion"]["version"] == v
    failures = {(f["version"], f["event"]) for f in status["notify_failures"]}
    assert failures == {(v, "proposed"), (v, "approved")}
    human = trained.cli("status")
    assert human.exit_code == 0
    assert f"notification failed: v{v} approved" in human.stdout
    assert "ops-chat" in human.stdout


def test_retries_a_failing_receiver_and_gives_up_on_a_client_error(receiver: Receiver) -> None:
    from magenta_release.core.messages import Message
    from magenta_release.core.policy import NotifyEvent, NotifySection
    from magenta_release.io.webhooks import deliver

    section = NotifySection.model_validate(
        {
            "backoff_seconds": 0.01,
            "webhooks": [
                {"name": "bot", "kind": "signed", "url": receiver.url("/s"), "secret_env": "S"}
            ],
        }
    )
    message = Message(NotifyEvent.APPROVED, "churn-classifier", 4, "alice")
    receiver.statuses = [503, 503]
    outcome = deliver(section, message, env={"S": SECRET})
    assert outcome.ok
    assert outcome.deliveries[0].attempts == 3
    ids = {m.headers["X-Magenta-Release-Delivery"] for m in receiver.messages}
    assert ids == {message.id}  # one message, retried: the receiver can deduplicate
    for m in receiver.messages:
        assert m.verified()["version"] == 4

    receiver.messages.clear()
    receiver.statuses = [400]
    outcome = deliver(section, message, env={"S": SECRET})
    assert not outcome.ok
    assert (outcome.deliveries[0].attempts, outcome.deliveries[0].status) == (1, 400)
    assert len(receiver.messages) == 1

    missing = deliver(section, message, env={})
    assert missing.deliveries[0].error == "environment variable S is not set"
    assert len(receiver.messages) == 1  # nothing unsigned was sent


def test_links_drop_credentials_and_escape_markup() -> None:
    from magenta_release.core import messages as notify
    from magenta_release.core.policy import NotifyEvent

    assert (
        notify.version_link("https://mlflow.example.eu/base", "churn-classifier", 3)
        == "https://mlflow.example.eu/base/#/models/churn-classifier/versions/3"
    )
    m = notify.Message(
        NotifyEvent.PROPOSED,
        "churn-classifier",
        3,
        "<!channel> & co",
        link="https://mlflow.example.eu/#/models/churn-classifier/versions/3",
    )
    slack = notify.slack_payload(m)
    assert "<!channel>" not in json.dumps(slack)
    assert "&lt;!channel&gt; &amp; co" in slack["blocks"][1]["text"]["text"]
    assert (
        "<https://mlflow.example.eu/#/models/churn-classifier/versions/3|open in MLflow>"
        in (slack["blocks"][1]["text"]["text"])
    )


def test_links_for_a_server_store(trained: Trained) -> None:
    from magenta_release.app.context import Context
    from magenta_release.app.services import notify
    from magenta_release.core.settings import Settings

    ctx = Context.open(Settings(home=trained.cli.home))
    ctx.store.tracking_uri = "https://user:pw@mlflow.example.eu:8443/?x=1"
    assert notify.ui_base(ctx) == "https://mlflow.example.eu:8443"


def test_integrity_alert_is_sent_but_a_read_writes_nothing(
    trained: Trained, receiver: Receiver, tmp_path: Path
) -> None:
    from tests.conftest import snapshot

    three_hooks(trained, receiver)
    v = _propose(trained, "good")
    _approve(trained, v)
    _client(trained).delete_registered_model_alias("churn-classifier", "champion")  # out of band
    receiver.messages.clear()
    before = snapshot(trained.cli.home)

    status = trained.cli("status", "--json")
    assert status.exit_code == 3, status.stderr
    out = tmp_path / "scores.parquet"
    predicted = trained.cli("predict", "--input", str(tmp_path / "in.csv"), "--output", str(out))
    assert predicted.exit_code == 3, predicted.stderr

    assert snapshot(trained.cli.home) == before  # sent, not recorded
    for path in ("/slack", "/chat", "/signed"):
        got = receiver.at(path)
        assert [m.event() for m in got] == ["integrity_alert", "integrity_alert"], path
        for m in got:
            _check_message(m, "integrity_alert", None)
    alert = receiver.at("/signed")[0].verified()
    assert any("@champion" in fact for fact in alert["facts"])
    assert "magenta-release repair --model churn-classifier --reason ..." in alert["commands"]


def test_an_expired_proposal_cannot_be_approved(trained: Trained) -> None:
    configure(trained, [], approval={"expires_after_days": 14})
    v = _propose(trained, "good")
    _age(trained, v, 15)
    status = trained.cli.json("status")
    [pending] = status["pending"]
    assert (pending["age_days"], pending["expired"]) == (15.0, True)
    refused = trained.cli("approve", str(v), "--reason", "x", "--yes", by=ALICE)
    assert refused.exit_code == 1, refused.stderr
    assert "expired after 14 days" in refused.stderr
    assert f"magenta-release reject {v} --reason expired" in refused.stderr
    assert "then propose its run again" in refused.stderr
    # proposing it again while it is pending returns the same expired version
    assert _propose(trained, "good") == v
    assert trained.cli("approve", str(v), "--reason", "x", "--yes", by=ALICE).exit_code == 1
    # the way out the message names: reject it, then its run gets a new, fresh version
    trained.cli.json("reject", str(v), "--reason", "expired", by=ALICE)
    again = _propose(trained, "good")
    assert again == v + 1
    assert _approve(trained, again)["champion"] == again


def test_expiry_zero_refuses_at_once(trained: Trained) -> None:
    configure(trained, [], approval={"expires_after_days": 0})
    v = _propose(trained, "good")
    assert "expired" in trained.cli("approve", str(v), "--reason", "x", "--yes", by=ALICE).stderr


def test_remind_sends_one_message_per_old_pending_version(
    trained: Trained, receiver: Receiver, tmp_path: Path
) -> None:
    import dagster as dg

    from dagster_assets.definitions import daily_reminders, defs, send_reminders
    from dagster_assets.resources import ReleaseStore

    three_hooks(trained, receiver)
    path = trained.cli.home / "release-policy.toml"
    data = tomllib.loads(path.read_text())
    data["approval"].update({"remind_after_days": 2, "expires_after_days": 14})
    path.write_text(tomli_w.dumps(data))
    set_stored_policy(trained.cli.home, path)
    old, fresh = _propose(trained, "good"), _propose(trained, "other")
    _age(trained, old, 3)
    receiver.messages.clear()

    sent = trained.cli.json("remind", by="scheduler")["reminders"]
    assert [(r["version"], r["expired"], r["delivered"]) for r in sent] == [(old, False, True)]
    for p in ("/slack", "/chat", "/signed"):
        [m] = receiver.at(p)
        _check_message(m, "reminder", old)
    reminder = receiver.at("/signed")[0].verified()
    assert "magenta-release approve 1 --model churn-classifier --reason ..." in reminder["commands"]
    assert any("waiting 3.0 days" in f for f in reminder["facts"])
    assert _tag(trained, old, "release.notify.reminder")["ok"] is True

    # an expired one is named, with the only command that still works
    _age(trained, fresh, 20)
    receiver.messages.clear()
    sent = trained.cli.json("remind")["reminders"]
    assert [(r["version"], r["expired"]) for r in sent] == [(old, False), (fresh, True)]
    late = [m.verified() for m in receiver.at("/signed") if m.verified()["version"] == fresh]
    assert late[0]["commands"] == [
        f"magenta-release reject {fresh} --model churn-classifier --reason expired"
    ]

    # a rejection is an event too; the rejected version is no longer reminded
    receiver.messages.clear()
    trained.cli.json("reject", str(fresh), "--reason", "expired", by=BOB)
    for p in ("/slack", "/chat", "/signed"):
        [m] = receiver.at(p)
        _check_message(m, "rejected", fresh)

    # the Dagster code location runs the same function daily; the rejected version, though
    # old, is no longer reminded
    dg.Definitions.validate_loadable(defs)
    assert daily_reminders.cron_schedule == "0 9 * * *"
    assert daily_reminders.job_name == "remind_approvers"
    receiver.messages.clear()
    env = {k: v for k, v in trained.cli.env.items() if k.startswith("TEST_") and v}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        send_reminders(
            dg.build_op_context(),
            release=ReleaseStore(home=str(trained.cli.home), identity="dagster"),
        )
    assert [json.loads(m.body)["version"] for m in receiver.at("/signed")] == [old]


def test_policy_refuses_unsafe_webhooks(trained: Trained) -> None:
    for hook, why in (
        ({"name": "x", "kind": "slack", "url": "file:///etc/passwd"}, "https"),
        ({"name": "x", "kind": "slack", "url": "http://chat.example.com/hook"}, "https"),
        ({"name": "x", "kind": "signed", "url": "https://bot.example.eu/h"}, "secret_env"),
        ({"name": "x", "kind": "slack"}, "exactly one of `url` and `url_env`"),
        ({"name": "x", "kind": "teams", "url_env": "U"}, "notify.webhooks"),
    ):
        path = configure(trained, [hook], store=False)
        result = trained.cli("policy", "set", str(path), "--reason", "x", by="release-manager")
        assert result.exit_code == 2, (hook, result.stderr)
        assert why in result.stderr, (hook, result.stderr)
    # a release never waits long on a webhook: the worst case is bounded by the policy
    path = configure(trained, [], store=False, attempts=5, timeout_seconds=30)
    result = trained.cli("policy", "set", str(path), "--reason", "x", by="release-manager")
    assert result.exit_code == 2
    assert "may take 150.15 s; keep it under 60 s" in result.stderr


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://169.254.169.254/computeMetadata/v1/", "link-local address 169.254.169.254"),
        ("https://[::ffff:169.254.169.254]/x", "link-local address 169.254.169.254"),
        ("https://metadata.google.internal/x", "metadata server metadata.google.internal"),
        ("https://10.1.2.3/hook", "private address 10.1.2.3"),
        ("https://192.168.0.7/hook", "private address 192.168.0.7"),
        ("https://0.0.0.0/hook", "not a unicast address"),
        ("https://[2002:a9fe:a9fe::1]/x", "link-local address 169.254.169.254"),  # 6to4
        ("https://100.64.0.9/hook", "not a public address"),  # shared address space
    ],
)
def test_no_webhook_reaches_the_metadata_server_or_a_private_address(
    url: str, problem: str
) -> None:
    """The request forgery of MLflow's own webhooks (CVE-2026-64849) through ours: refused
    before anything is sent, whatever the policy's URL says."""
    from magenta_release.core.messages import Message
    from magenta_release.core.policy import NotifyEvent, NotifySection
    from magenta_release.io.webhooks import deliver

    section = NotifySection.model_validate(
        {"webhooks": [{"name": "hook", "kind": "signed", "url": url, "secret_env": "S"}]}
    )
    outcome = deliver(section, Message(NotifyEvent.APPROVED, "m", 1, "alice"), env={"S": "x"})
    (delivery,) = outcome.deliveries
    assert not delivery.ok and delivery.attempts == 0  # nothing was sent, not even once
    assert problem in (delivery.error or ""), delivery.error


def test_a_private_relay_is_reached_only_when_the_policy_allows_it() -> None:
    from magenta_release.io.webhooks import address_problem, host_problem

    assert "private" in (host_problem("https://10.1.2.3/", allow_private=False) or "")
    assert host_problem("https://10.1.2.3/", allow_private=True) is None
    # link-local stays refused even then; loopback is always allowed (a local relay)
    assert "link-local" in (address_problem("169.254.169.254", allow_private=True) or "")
    assert address_problem("127.0.0.1", allow_private=False) is None
    assert address_problem("::1", allow_private=False) is None
