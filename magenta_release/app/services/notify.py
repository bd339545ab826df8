"""Release notifications for the use cases: each release event (proposed, gates failed,
approved, rejected, rolled back, integrity alert, reminder, health alert) sends one message
(`core.messages`) to every webhook under `[notify]` in the policy that subscribes to it
(`io.webhooks`). The outcome of an event about a version is recorded after the fact as the
version tag `release.notify.<event>` (JSON; `status` lists failures). An integrity alert comes
from a read command, which never writes: it is sent, not recorded."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse, urlunparse

from magenta_release.core.evidence import Evidence
from magenta_release.core.lifecycle import IntegrityAlert
from magenta_release.core.messages import (
    TAG_PREFIX,
    Message,
    Outcome,
    commands_for,
    open_hint,
    version_link,
)
from magenta_release.core.policy import NotifyEvent
from magenta_release.core.records import VersionInfo
from magenta_release.io.webhooks import deliver, subscribed

if TYPE_CHECKING:
    from magenta_release.app.context import Context

log = logging.getLogger(__name__)


def ui_base(ctx: Context) -> str | None:
    """The MLflow UI the links point at: `[notify] ui_url`, else an http(s) tracking URI.
    Credentials, query and fragment are dropped: a link is pasted into a chat."""
    uri = ctx.policy.notify.ui_url or ctx.store.tracking_uri
    parsed = urlparse(uri)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return None
    host = parsed.hostname if parsed.port is None else f"{parsed.hostname}:{parsed.port}"
    return urlunparse((parsed.scheme, host, parsed.path.rstrip("/"), "", "", ""))


def build(
    ctx: Context,
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
    gates = Evidence.of(v).gates if v is not None else ()
    return Message(
        event=event,
        model=ctx.model,
        version=version,
        actor=actor,
        status=v.status if v else None,
        champion_before=champion_before,
        champion_after=champion_after,
        passed=tuple(g.name for g in gates if g.passed),
        failed=tuple(g.name for g in gates if not g.passed),
        link=version_link(ui_base(ctx), ctx.model, version),
        open_hint=open_hint(ctx.model, version),
        commands=commands_for(event, version, ctx.model) if commands is None else commands,
        facts=facts,
    )


def announce(
    ctx: Context,
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
    if not ctx.notifies or not subscribed(ctx.policy.notify, event):
        return None
    # A notification bug must never turn a completed release into a failed command: anything
    # unexpected is logged and the release stands (the missing tag shows nothing was sent).
    try:
        v = ctx.registry.version(version)
        champion = ctx.registry.alias("champion")
        message = build(
            ctx,
            event,
            actor,
            v,
            champion_before=champion_before,
            champion_after=champion.version if champion else None,
            facts=facts,
            commands=commands,
        )
        outcome = deliver(ctx.policy.notify, message)
        authority = ctx.authority
        if authority is not None:  # server mode: only the release authority writes versions
            authority.record_notification(
                ctx.model, version, event=str(event), outcome=outcome.to_json()
            )
        else:
            ctx.registry.set_version_tags(
                version, {TAG_PREFIX + str(event): json.dumps(outcome.to_json())}
            )
    except Exception:
        log.exception("notification of %s for version %s failed", event, version)
        return None
    return outcome


def alert(ctx: Context, exc: IntegrityAlert) -> Outcome | None:
    """Send an integrity alert found by a read command. Sent, never recorded: reads never
    write (the alert itself is the record, and it repeats until `repair`)."""
    event = NotifyEvent.INTEGRITY_ALERT
    if not ctx.notifies or not subscribed(ctx.policy.notify, event):
        return None
    try:
        facts = tuple(d.message().removeprefix("registry: ") for d in exc.problems[:8])
        message = build(ctx, event, ctx.actor, None, facts=facts)
        return deliver(ctx.policy.notify, message)
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
