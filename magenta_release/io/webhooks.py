"""Webhook delivery: one message to every subscribed webhook, in parallel, bounded in time.

Delivery never blocks, delays beyond a bound, or undoes a release: every webhook is tried in
parallel, each attempt times out after `timeout_seconds`, at most `attempts` attempts with
doubling backoff, after one name lookup bounded by the same timeout, so the whole call ends
within (attempts + 1) x timeout + backoff x (2^(attempts-1) - 1) seconds (23 s by default; the
policy bounds the attempts and backoff part to 60 s). Secrets stay out of the policy:
it names environment variables (`secret_env`, and `url_env` because a Slack or Chat webhook URL
is itself a credential). In production they are injected from Secret Manager into the
environment of the Cloud Run job / Dagster code location (`--set-secrets` / `secretKeyRef`),
never written to a file."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import time
import urllib.error
import urllib.parse
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

# Names that reach a cloud's metadata server whatever they resolve to here.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})


def address_problem(address: str, allow_private: bool) -> str | None:
    """Why a webhook may not be delivered to `address` (an IP), or None: the request forgery
    MLflow's own webhooks had (CVE-2026-64849) must not be possible through ours. Loopback is
    allowed (a local relay; plain http is allowed only there), link-local (the metadata
    server) never, private addresses only when `[notify] allow_private_addresses`."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):  # an IPv4 address carried inside IPv6
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        ip = inner or ip
    if ip.is_loopback:
        return None
    if ip.is_link_local:
        return f"resolves to the link-local address {ip} (a metadata server): refused"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return f"resolves to {ip}, which is not a unicast address: refused"
    if ip.is_private and allow_private:
        return None
    if ip.is_private:
        return (
            f"resolves to the private address {ip}: refused (set allow_private_addresses = "
            "true under [notify] for a relay inside your network)"
        )
    if not ip.is_global:  # shared (100.64/10), documentation and other special ranges
        return f"resolves to {ip}, which is not a public address: refused"
    return None


def host_problem(url: str, allow_private: bool, timeout: float = 5.0) -> str | None:
    """Check every address the URL's host resolves to, before anything is sent. The lookup
    is bounded by `timeout` (the resolver itself has none)."""
    host = (urllib.parse.urlparse(url).hostname or "").rstrip(".").lower()
    if host in METADATA_HOSTS:
        return f"names the metadata server {host}: refused"
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        infos = pool.submit(socket.getaddrinfo, host, None).result(timeout=timeout)
        found = {info[4][0] for info in infos}
    except TimeoutError:
        return f"cannot be resolved within {timeout:g} s"
    except (OSError, UnicodeError) as exc:
        return f"cannot be resolved ({exc})"
    finally:
        pool.shutdown(wait=False)
    for address in sorted(found):
        problem = address_problem(str(address), allow_private)
        if problem:
            return problem
    return None


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    """Checks the address it actually connected to, so a name that resolves to a public
    address when checked and to the metadata server when connecting (DNS rebinding) still
    sends nothing: the request is written only after this check."""

    allow_private = False

    def connect(self) -> None:
        super().connect()
        peer = self.sock.getpeername()[0]
        problem = address_problem(str(peer), self.allow_private)
        if problem:
            self.close()
            raise OSError(f"the webhook host {problem}")


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    def https_open(self, req: urllib.request.Request) -> Any:
        allow = self.allow_private

        class Connection(_CheckedHTTPSConnection):
            allow_private = allow

        return self.do_open(Connection, req, context=self._context)  # type: ignore[attr-defined]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would re-send the message (as a bodiless GET) somewhere not configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENERS = {
    allow: urllib.request.build_opener(_NoRedirect, _CheckedHTTPSHandler(allow))
    for allow in (False, True)
}
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
    problem = webhook_url_problem(url) or host_problem(
        url, section.allow_private_addresses, section.timeout_seconds
    )
    if problem:
        where = f"the URL in {hook.url_env}" if hook.url_env else "the URL"
        return Delivery(hook.name, False, 0, error=f"{where} {problem}")
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
        status, error = _post(
            url, body, message, secret, section.timeout_seconds, section.allow_private_addresses
        )
        if status is not None and 200 <= status < 300:
            return Delivery(hook.name, True, attempt, status)
        if status is not None and status not in _RETRY_STATUS:
            break
    return Delivery(hook.name, False, attempt, status, error.replace(url, "<url>"))


def _post(
    url: str,
    body: bytes,
    message: Message,
    secret: str | None,
    timeout: float,
    allow_private: bool = False,
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
        with _OPENERS[allow_private].open(request, timeout=timeout) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return None, str(exc.reason)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # timeouts, resets
        return None, f"{type(exc).__name__}: {exc}"
