"""Webhook delivery: one message to every subscribed webhook, in parallel, bounded in time.

Delivery never blocks, delays beyond a bound, or undoes a release: every webhook is tried in
parallel, each attempt times out after `timeout_seconds`, at most `attempts` attempts with
doubling backoff, so the whole call ends within attempts x timeout + backoff x
(2^(attempts-1) - 1) seconds (18 s by default; the policy refuses more than 60 s, so a command
that notifies never waits longer than that for its webhooks). Secrets stay out of the policy:
it names environment variables (`secret_env`, and `url_env` because a Slack or Chat webhook URL
is itself a credential). In production they are injected from Secret Manager into the
environment of the Cloud Run job / Dagster code location (`--set-secrets` / `secretKeyRef`),
never written to a file."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from magenta_release.core.messages import (
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    PAYLOADS,
    Delivery,
    Message,
    Outcome,
    signature,
)
from magenta_release.core.policy import NotifyEvent, NotifySection, Webhook, webhook_url_problem


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
