"""Where the audit log is stored: hash-chained events as tags of a registered model of its own
(`<model>-audit-log`) in the MLflow store itself, so it is the same log against SQLite or a
server, and its head as a tag of the governed model. `read` is the one read of a log a command
makes; the events, the chain and its checks are `core.audit`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from magenta_release.core.audit import (
    EVENT_PREFIX,
    GENESIS,
    HEAD_TAG,
    LOG_SUFFIX,
    Event,
    Log,
    Verification,
    dumps,
    event_key,
    log_name,
)
from magenta_release.core.errors import IntegrityViolation

if TYPE_CHECKING:
    from magenta_release.io.store import Store

__all__ = [
    "EVENT_PREFIX",
    "GENESIS",
    "HEAD_TAG",
    "LOG_SUFFIX",
    "Event",
    "Log",
    "Verification",
    "append",
    "read",
]

LOG_DESCRIPTION = (
    "Release log of `{model}`, written by magenta-release: one hash-chained event per tag. "
    "Never edit it here; read it with `magenta-release history`, check it with "
    "`magenta-release audit verify`."
)


def read(store: Store, model: str) -> Log:
    """The log of `model` and its recorded head: one read of each registered model."""
    log_tags = store.tags.model_tags_or_none(log_name(model))
    head = store.tags.model_tags(model).get(HEAD_TAG)
    return Log.from_tags(model, log_tags, head)


def append(
    store: Store,
    log: Log,
    *,
    policy_sha256: str,
    actor: str,
    action: str,
    version: int | None,
    status: str | None,
    champion_before: int | None,
    champion_after: int | None,
    reason: str = "",
    evidence_sha256: str = "",
    manifest_sha256: str = "",
    details: dict[str, Any] | None = None,
) -> tuple[Event, Log]:
    """Append the next event to `log` (read under the release lock), then move the head to
    it. Returns the event and the log as it now stands."""
    if log.chain_problems:
        raise IntegrityViolation(
            f"the last entry of {log.name} is not a valid event; nothing was written — run "
            "`magenta-release audit verify` and restore the store"
        )
    event = log.next_event(
        time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        actor=actor,
        action=str(action),
        version=version,
        status=None if status is None else str(status),
        champion_before=champion_before,
        champion_after=champion_after,
        reason=reason,
        evidence_sha256=evidence_sha256,
        manifest_sha256=manifest_sha256,
        policy_sha256=policy_sha256,
        mlflow_user=store.whoami(),
        details=details or {},
    )
    first = not log.entries
    store.tags.set_model_tag(
        log.name,
        event_key(event.seq),
        dumps(event.to_json()),
        create=first,  # the first event creates the log's registered model
        description=LOG_DESCRIPTION.format(model=log.model),
    )
    store.tags.set_model_tag(log.model, HEAD_TAG, f"{event.seq}:{event.hash}", create=first)
    return event, log.appended(event)
