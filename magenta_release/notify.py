"""Release notifications: the human in the loop is told when to act.

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

Secrets stay out of the policy: it names environment variables (`secret_env`, and `url_env`
because a Slack or Chat webhook URL is itself a credential). In production they are injected
from Secret Manager into the environment of the Cloud Run job / Dagster code location
(`--set-secrets` / `secretKeyRef`), never written to a file.

Delivery never blocks, delays beyond a bound, or undoes a release: every webhook is tried in
parallel, each attempt times out after `timeout_seconds`, at most `attempts` attempts with
doubling backoff, so the whole call ends within attempts x timeout + backoff x
(2^(attempts-1) - 1) seconds (18 s by default; the policy refuses more than 60 s, because
propose notifies before it releases the release lock). The outcome of an event about a
version is recorded after the fact as the version tag `release.notify.<event>` (JSON; `status`
lists failures). An integrity alert comes from a read command, which never writes: it is sent,
not recorded.

Messages carry the model, version, actor, status, gate names (passed / failed), champion
numbers, a link to the version in the MLflow UI and the exact next command. Never customer
data: no rows, identifiers or gate details, and no free text (`--note`, `--reason`) either,
since people may paste anything there; those stay in the store, behind its access control.
Actor names are staff identities: choose chat spaces whose data region fits the residency
rules (Google Workspace data regions can pin Chat to the EU).
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse, urlunparse

from magenta_release.policy import NotifyEvent, NotifySection, Webhook, webhook_url_problem

if TYPE_CHECKING:
    from magenta_release.lifecycle import IntegrityAlert
    from magenta_release.store import Store, VersionInfo

log = logging.getLogger(__name__)

TAG_PREFIX = "release.notify."
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


def ui_base(store: Store) -> str | None:
    """The MLflow UI the links point at: `[notify] ui_url`, else an http(s) tracking URI.
    Credentials, query and fragment are dropped: a link is pasted into a chat."""
    uri = store.policy.notify.ui_url or store.tracking_uri
    parsed = urlparse(uri)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return None
    host = parsed.hostname if parsed.port is None else f"{parsed.hostname}:{parsed.port}"
    return urlunparse((parsed.scheme, host, parsed.path.rstrip("/"), "", "", ""))


def version_link(base: str | None, model: str, version: int | None) -> str | None:
    """`{base}/#/models/{name}/versions/{v}` (the MLflow UI's route), or None without a UI."""
    if base is None:
        return None
    path = f"{base}/#/models/{quote(model, safe='')}"
    return path if version is None else f"{path}/versions/{version}"


def _open_hint(model: str, version: int | None) -> str:
    local = version_link("http://127.0.0.1:5000", model, version)
    return f"local store: run `magenta-release ui` on its machine, then open {local}"


def build(
    store: Store,
    event: NotifyEvent,
    actor: str,
    v: VersionInfo | None,
    *,
    champion_before: int | None = None,
    champion_after: int | None = None,
    facts: tuple[str, ...] = (),
    commands: tuple[str, ...] | None = None,
) -> Message:
    """The message for an event about version `v` (None: about the whole model)."""
    version = v.version if v else None
    passed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    if v is not None:
        gates = _gates(v.tags.get("release.evidence", ""))
        passed = tuple(name for name, ok in gates if ok)
        failed = tuple(name for name, ok in gates if not ok)
    return Message(
        event=event,
        model=store.name,
        version=version,
        actor=actor,
        status=v.status if v else None,
        champion_before=champion_before,
        champion_after=champion_after,
        passed=passed,
        failed=failed,
        link=version_link(ui_base(store), store.name, version),
        open_hint=_open_hint(store.name, version),
        commands=_commands(event, version, store.name) if commands is None else commands,
        facts=facts,
    )


def _gates(evidence: str) -> list[tuple[str, bool]]:
    """(name, passed) of the gates recorded at proposal; details stay in the store."""
    try:
        doc = json.loads(evidence)
        return [(str(g["name"]), bool(g["passed"])) for g in doc.get("gates", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


def _commands(event: NotifyEvent, version: int | None, model: str) -> tuple[str, ...]:
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


# ---- delivery ------------------------------------------------------------------------------
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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would re-send the message (as a bodiless GET) somewhere not configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
# Worth another attempt: the receiver may recover. Any other 4xx is a configuration error.
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def subscribed(section: NotifySection, event: NotifyEvent) -> list[Webhook]:
    return [w for w in section.webhooks if event in w.events]


def deliver(
    section: NotifySection, message: Message, env: Mapping[str, str] | None = None
) -> Outcome:
    """Send `message` to every subscribed webhook, in parallel, bounded in time. Never raises
    for a network or configuration problem: that is the webhook's Delivery error."""
    env = os.environ if env is None else env
    hooks = subscribed(section, message.event)
    with ThreadPoolExecutor(max_workers=max(1, len(hooks))) as pool:
        done = tuple(pool.map(lambda w: _deliver_one(section, w, message, env), hooks))
    return Outcome(str(message.event), message.id, message.time, done)


def _deliver_one(
    section: NotifySection, hook: Webhook, message: Message, env: Mapping[str, str]
) -> Delivery:
    url = hook.url or env.get(hook.url_env or "", "")
    if not url:
        return Delivery(
            hook.name, False, 0, error=f"environment variable {hook.url_env} is not set"
        )
    problem = webhook_url_problem(url)
    if problem:
        return Delivery(hook.name, False, 0, error=f"the URL in {hook.url_env} {problem}")
    secret = env.get(hook.secret_env) if hook.secret_env else None
    if hook.secret_env and not secret:
        return Delivery(
            hook.name, False, 0, error=f"environment variable {hook.secret_env} is not set"
        )
    body = json.dumps(PAYLOADS[hook.kind](message), sort_keys=True).encode("utf-8")
    status: int | None = None
    error = ""
    for attempt in range(1, section.attempts + 1):
        if attempt > 1:
            time.sleep(section.backoff_seconds * 2 ** (attempt - 2))
        status, error = _post(url, body, message, secret, section.timeout_seconds)
        if status is not None and 200 <= status < 300:
            return Delivery(hook.name, True, attempt, status)
        if status is not None and status not in _RETRY_STATUS:
            break
    return Delivery(hook.name, False, attempt, status, error.replace(url, "<url>"))


def _post(
    url: str, body: bytes, message: Message, secret: str | None, timeout: float
) -> tuple[int | None, str]:
    """One attempt: (HTTP status or None, error text)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "magenta-release",
        HEADER_EVENT: str(message.event),
        HEADER_DELIVERY: message.id,
    }
    if secret:
        timestamp = str(int(time.time()))
        headers[HEADER_TIMESTAMP] = timestamp
        headers[HEADER_SIGNATURE] = signature(secret, timestamp, body)
    # S310: the scheme was checked (https, or http to loopback) before the first attempt.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, str(exc.reason)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, resets
        return None, f"{type(exc).__name__}: {exc}"


# ---- the hooks the release commands call ---------------------------------------------------
def announce(
    store: Store,
    event: NotifyEvent,
    version: int,
    actor: str,
    *,
    champion_before: int | None = None,
    facts: tuple[str, ...] = (),
    commands: tuple[str, ...] | None = None,
) -> Outcome | None:
    """Tell the webhooks about an event of a version that a command has just recorded, then
    record the outcome as the version tag `release.notify.<event>`. Returns None when no webhook
    subscribes. Called after the state change is complete: nothing here can undo it."""
    if not subscribed(store.policy.notify, event):
        return None
    # A notification bug must never turn a completed release into a failed command: anything
    # unexpected is logged and the release stands (the missing tag shows nothing was sent).
    try:
        v = store.registry.version(version)
        champion = store.registry.alias("champion")
        message = build(
            store,
            event,
            actor,
            v,
            champion_before=champion_before,
            champion_after=champion.version if champion else None,
            facts=facts,
            commands=commands,
        )
        outcome = deliver(store.policy.notify, message)
        store.registry.set_version_tags(
            version, {TAG_PREFIX + str(event): json.dumps(outcome.to_json())}
        )
    except Exception:
        log.exception("notification of %s for version %s failed", event, version)
        return None
    return outcome


def alert(store: Store, exc: IntegrityAlert) -> Outcome | None:
    """Send an integrity alert found by a read command. Sent, never recorded: reads never
    write (the alert itself is the record, and it repeats until `repair`)."""
    event = NotifyEvent.INTEGRITY_ALERT
    if not subscribed(store.policy.notify, event):
        return None
    try:
        facts = tuple(d.message().removeprefix("registry: ") for d in exc.problems[:8])
        message = build(store, event, store.actor(), None, facts=facts)
        return deliver(store.policy.notify, message)
    except Exception:  # the alert the user sees (exit 3) matters more than the message
        log.exception("integrity alert notification failed")
        return None


def failures(versions: list[VersionInfo]) -> list[dict[str, Any]]:
    """Recorded deliveries that failed, newest version first (for `status`)."""
    found = []
    for v in versions:
        for key in sorted(k for k in v.tags if k.startswith(TAG_PREFIX)):
            try:
                doc = json.loads(v.tags[key])
            except ValueError:
                continue
            bad = [d for d in doc.get("deliveries", []) if not d.get("ok")]
            if bad:
                found.append(
                    {
                        "version": v.version,
                        "event": key.removeprefix(TAG_PREFIX),
                        "at": doc.get("at"),
                        "failed": [
                            {"webhook": d.get("webhook"), "error": d.get("error")} for d in bad
                        ],
                    }
                )
    return found
