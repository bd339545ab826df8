"""The release lock of one governed model: one state change at a time.

- A SQLite store (the embedded store, or a `sqlite://` URI naming the same file: one machine):
  an exclusive `flock` on `locks/<model>.lock` beside the database file.
  The kernel releases it when its holder exits, killed or not, so no lock is ever stale, and
  taking it writes nothing to the store: a command refused after taking it leaves the store
  byte for byte as it was, so a writer can take the lock first and read the audit log once,
  under it.
- A tracking server: an atomic MLflow operation, so it works against any server: creating a
  registered model whose name exists fails atomically. Stale locks (a holder killed
  mid-operation) expire after a TTL and are broken by exactly one process."""

from __future__ import annotations

import fcntl
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from magenta_release.core.errors import StoreUnreachable
from magenta_release.core.policy import LOCK_SUFFIX
from magenta_release.io.store import Store

TTL_SECONDS = 120.0
WAIT_SECONDS = 180.0


def lock_name(model: str) -> str:
    return f"{model}{LOCK_SUFFIX}"


def lock_file(db: Path, model: str) -> Path:
    """The lock file of `model` in the SQLite store whose database file is `db`."""
    return db.parent / "locks" / f"{model}.lock"


def _ensure(path: Path) -> None:
    """The lock file exists from the first `policy set` of its model (so taking the lock later
    writes nothing); a store from before lock files gets it on its first write."""
    path.parent.mkdir(exist_ok=True)
    path.touch(exist_ok=True)


@contextmanager
def release_lock(
    store: Store, model: str, ttl: float = TTL_SECONDS, wait: float = WAIT_SECONDS
) -> Iterator[str]:
    """Hold `model`'s release lock for the duration of the block; yields its token. The
    caller has checked that `model` is a governed model's name (the lock file is named by it)."""
    db = store.sqlite_path
    if db is not None:
        with _file_lock(lock_file(db, model), model, wait) as token:
            yield token
        return
    with _model_lock(store, model, ttl, wait) as token:
        yield token


@contextmanager
def _file_lock(path: Path, model: str, wait: float) -> Iterator[str]:
    _ensure(path)
    fd = os.open(path, os.O_RDWR)
    try:
        deadline = time.monotonic() + wait
        delay = 0.02
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnreachable(
                        f"the release lock of {model} is held by another command on this "
                        f"machine for more than {wait:.0f} s; retry when it is done"
                    ) from None
                time.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter
                delay = min(delay * 1.5, 0.5)
        yield uuid.uuid4().hex
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def _model_lock(store: Store, model: str, ttl: float, wait: float) -> Iterator[str]:
    name = lock_name(model)
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


def lock_held(store: Store, model: str) -> bool:
    """True while a live process holds the release lock (a state change is in flight). A lock
    left by a killed process, or older than its TTL, is in flight no longer: a reader does not
    wait for it (the next writer breaks it)."""
    db = store.sqlite_path
    if db is not None:
        path = lock_file(db, model)
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
    held = store.tags.model_created(lock_name(model))
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
