"""A release lock on an atomic MLflow operation, so it works the same against SQLite and a
server: creating a registered model whose name exists fails atomically. Stale locks (a holder
killed mid-operation) expire after a TTL and are broken by exactly one process."""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from magenta_release.errors import StoreUnreachable
from magenta_release.store import Store

TTL_SECONDS = 120.0
WAIT_SECONDS = 180.0


def lock_name(store: Store) -> str:
    return f"{store.name}-release-lock"


@contextmanager
def release_lock(
    store: Store, ttl: float = TTL_SECONDS, wait: float = WAIT_SECONDS
) -> Iterator[str]:
    """Hold the store-wide release lock for the duration of the block; yields its token."""
    name = lock_name(store)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    delay = 0.02
    while True:
        acquired_at = int(time.time() * 1000)
        if store.tags.try_create_model(
            name,
            {
                "owner": token,
                "acquired_at": str(acquired_at),
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
            },
        ):
            break
        held = store.tags.model_created(name)
        if held is not None:
            _, tags = held
            since = int(tags.get("acquired_at", "0") or 0)
            if time.time() * 1000 - since > ttl * 1000 or process_gone(
                tags.get("host"), tags.get("pid")
            ):
                _break_stale(store, name, since)
                continue
            if time.monotonic() > deadline:
                raise StoreUnreachable(
                    f"the release lock is held by pid {tags.get('pid')} on {tags.get('host')} "
                    f"since {time.strftime('%H:%M:%S', time.gmtime(since / 1000))} UTC; retry "
                    f"later (it expires {ttl:.0f} s after it was taken)"
                )
        time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter, not security
        delay = min(delay * 1.5, 0.5)
    try:
        yield token
    finally:
        held = store.tags.model_created(name)
        if held is not None and held[1].get("owner") == token:
            store.tags.delete_model(name)


def lock_held(store: Store) -> bool:
    """True while a live process holds the release lock (a state change is in flight). A lock
    left by a killed process, or older than its TTL, is in flight no longer: a reader does not
    wait for it (the next writer breaks it)."""
    held = store.tags.model_created(lock_name(store))
    if held is None:
        return False
    _, tags = held
    since = int(tags.get("acquired_at", "0") or 0)
    expired = time.time() * 1000 - since > TTL_SECONDS * 1000
    return not (expired or process_gone(tags.get("host"), tags.get("pid")))


def process_gone(host: str | None, pid: str | None) -> bool:
    """True when `pid` ran on this host and no longer exists (killed or crashed)."""
    if host != socket.gethostname() or not (pid or "").isdigit():
        return False
    try:
        os.kill(int(pid or 0), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _break_stale(store: Store, name: str, since: int) -> None:
    """Delete a stale lock. Only the one process that creates the break marker for this lock
    instance may delete it, and only if it is still the same instance."""
    marker = f"{name}-break-{since}"
    if not store.tags.try_create_model(marker, {}):
        time.sleep(0.05)
        return
    try:
        held = store.tags.model_created(name)
        if held is not None and int(held[1].get("acquired_at", "0") or 0) == since:
            store.tags.delete_model(name)
    finally:
        store.tags.delete_model(marker)
