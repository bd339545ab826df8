"""Release notifications as pure values: the message about one release event, and the three
payload shapes it is rendered into. Delivery is `io.webhooks`; which events announce what is
`app.services.notify`.

Release notifications: the human in the loop is told when to act.

Each release event (proposed, gates failed, approved, rejected, rolled back, integrity alert,
reminder) sends one JSON message to every webhook under `[notify]` in the release policy that
subscribes to it. Three payload shapes:

- `google_chat`: a Google Chat incoming webhook, `{"text": ..., "cardsV2": [...]}`
  (https://developers.google.com/workspace/chat/api/reference/rest/v1/cards);
- `slack`: a Slack incoming webhook, `{"text": ..., "blocks": [...]}`
  (https://api.slack.com/messaging/webhooks);
- `signed`: plain JSON for a team's own endpoint (a deploy bot, a ticketing bridge), signed.

Signature (every webhook with `secret_env`; `signed` requires it), the scheme Stripe and GitHub
document (https://docs.stripe.com/webhooks#verify-manually,
https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries):

    X-Magenta-Release-Event:      the event name, e.g. `approved`
    X-Magenta-Release-Delivery:   a UUID, the same on every retry of one message (deduplicate)
    X-Magenta-Release-Timestamp:  Unix seconds when this attempt was signed
    X-Magenta-Release-Signature:  v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

A receiver recomputes the HMAC over the raw body bytes as received, compares it with
`hmac.compare_digest`, and refuses a timestamp more than five minutes from its clock (replay).

Messages carry the model, version, actor, status, gate names (passed / failed), champion
numbers, a link to the version in the MLflow UI and the exact next command. Never customer
data: no rows, identifiers or gate details, and no free text (`--note`, `--reason`) either,
since people may paste anything there; those stay in the store, behind its access control.
Actor names are staff identities: choose chat spaces whose data region fits the residency
rules (Google Workspace data regions can pin Chat to the EU).
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from magenta_release.core import keys
from magenta_release.core.policy import NotifyEvent

TAG_PREFIX = keys.NOTIFY_PREFIX
HEADER_EVENT = "X-Magenta-Release-Event"
HEADER_DELIVERY = "X-Magenta-Release-Delivery"
HEADER_TIMESTAMP = "X-Magenta-Release-Timestamp"
HEADER_SIGNATURE = "X-Magenta-Release-Signature"
SIGNATURE_VERSION = "v1"

TITLES = {
    NotifyEvent.PROPOSED: "waiting for approval",
    NotifyEvent.GATES_FAILED: "failed its release gates",
    NotifyEvent.APPROVED: "approved: now the champion",
    NotifyEvent.REJECTED: "rejected",
    NotifyEvent.ROLLED_BACK: "is the champion again (rollback)",
    NotifyEvent.INTEGRITY_ALERT: "INTEGRITY ALERT",
    NotifyEvent.REMINDER: "still waiting for approval",
    NotifyEvent.HEALTH_ALERT: "HEALTH ALERT: the champion is drifting or decaying",
}


# ---- the message ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """What every payload shape renders: numbers, names, links and commands only."""

    event: NotifyEvent
    model: str
    version: int | None
    actor: str
    status: str | None = None
    champion_before: int | None = None
    champion_after: int | None = None
    passed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    link: str | None = None
    open_hint: str = ""
    commands: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def title(self) -> str:
        what = f"{self.model} v{self.version}" if self.version is not None else self.model
        return f"{what} {TITLES[self.event]}"

    def lines(self) -> list[str]:
        """The body as plain lines (each renderer escapes and formats them)."""
        out = [f"by {self.actor}"]
        if self.event in {NotifyEvent.APPROVED, NotifyEvent.ROLLED_BACK}:
            out.append(f"champion: {_v(self.champion_before)} -> {_v(self.champion_after)}")
        elif self.version is not None:
            out.append(f"current champion: {_v(self.champion_after)}")
        out += list(self.facts)
        if self.passed or self.failed:
            out.append(f"gates passed ({len(self.passed)}): {', '.join(self.passed) or 'none'}")
            out.append(f"gates FAILED ({len(self.failed)}): {', '.join(self.failed) or 'none'}")
        out.append(self.link or self.open_hint)
        return out

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["title"] = self.title
        doc["gates"] = {"passed": list(self.passed), "failed": list(self.failed)}
        for key in ("passed", "failed", "open_hint"):
            doc.pop(key)
        doc["commands"] = list(self.commands)
        doc["facts"] = list(self.facts)
        return doc


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def version_link(base: str | None, model: str, version: int | None) -> str | None:
    """`{base}/#/models/{name}/versions/{v}` (the MLflow UI's route), or None without a UI."""
    if base is None:
        return None
    path = f"{base}/#/models/{quote(model, safe='')}"
    return path if version is None else f"{path}/versions/{version}"


def open_hint(model: str, version: int | None) -> str:
    local = version_link("http://127.0.0.1:5000", model, version)
    return f"local store: run `magenta-release ui` on its machine, then open {local}"


def commands_for(event: NotifyEvent, version: int | None, model: str) -> tuple[str, ...]:
    """The exact commands to act on the message; `--model` named, since a chat message has
    no shell context and a store may govern several models."""
    m = f"--model {model}"
    if event in {NotifyEvent.PROPOSED, NotifyEvent.REMINDER}:
        return (
            f"magenta-release approve {version} {m} --reason ...",
            f"magenta-release reject {version} {m} --reason ...",
        )
    if event == NotifyEvent.GATES_FAILED:
        return (f"magenta-release status {m}", f"magenta-release compare {m} --last 2")
    if event in {NotifyEvent.APPROVED, NotifyEvent.ROLLED_BACK}:
        return (f"magenta-release rollback {m} --reason ...",)
    if event == NotifyEvent.INTEGRITY_ALERT:
        return (f"magenta-release history {m}", f"magenta-release repair {m} --reason ...")
    if event == NotifyEvent.HEALTH_ALERT:
        return (
            f"magenta-release train {m} --data ...",
            f"magenta-release rollback {m} --reason ...",
        )
    return (f"magenta-release status {m}",)


# ---- payload shapes ------------------------------------------------------------------------
def _escape(text: str) -> str:
    """Slack mrkdwn and Chat text both treat &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain_text(m: Message) -> str:
    lines = [m.title, *m.lines(), *(f"next: {c}" for c in m.commands)]
    return "\n".join(lines)


def slack_payload(m: Message) -> dict[str, Any]:
    body = [_escape(line) for line in m.lines()[:-1]]
    body.append(f"<{m.link}|open in MLflow>" if m.link else _escape(m.open_hint))
    commands = "\n".join(f"`{_escape(c)}`" for c in m.commands)
    return {
        "text": _escape(plain_text(m)),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": m.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(body)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": commands}},
        ],
    }


def google_chat_payload(m: Message) -> dict[str, Any]:
    widgets: list[dict[str, Any]] = [
        {"textParagraph": {"text": "<br>".join(_escape(line) for line in m.lines()[:-1])}},
        {"textParagraph": {"text": "<br>".join(f"<b>{_escape(c)}</b>" for c in m.commands)}},
    ]
    if m.link:
        widgets.append(
            {
                "buttonList": {
                    "buttons": [
                        {"text": "Open in MLflow", "onClick": {"openLink": {"url": m.link}}}
                    ]
                }
            }
        )
    else:
        widgets.append({"textParagraph": {"text": _escape(m.open_hint)}})
    return {
        "text": _escape(plain_text(m)),
        "cardsV2": [
            {
                "cardId": f"magenta-release-{m.id}",
                "card": {
                    "header": {"title": m.title, "subtitle": f"magenta-release: {m.event}"},
                    "sections": [{"widgets": widgets}],
                },
            }
        ],
    }


def signed_payload(m: Message) -> dict[str, Any]:
    return {**m.to_json(), "text": plain_text(m)}


PAYLOADS = {"slack": slack_payload, "google_chat": google_chat_payload, "signed": signed_payload}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for one attempt."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, "sha256")
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


@dataclass(frozen=True)
class Delivery:
    """The outcome for one webhook. `error` never contains the URL (it may be a secret)."""

    webhook: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The outcome of one event: one delivery per subscribed webhook."""

    event: str
    id: str
    at: str
    deliveries: tuple[Delivery, ...]

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.deliveries)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "id": self.id,
            "at": self.at,
            "ok": self.ok,
            "deliveries": [asdict(d) for d in self.deliveries],
        }
