"""What the server refuses, whoever asks: alias moves the audit log does not authorize, policy
changes by anyone but the policy's owners, and any edit of an audit log other than appending
its next event.

- The rules of a model come from its own audit log: the latest `policy_set` event names the
  stored policy's approvers, owners and four-eyes switch (the log is append-only and chained,
  so nobody can bring their own). A model whose log has no `policy_set` is not governed.
- A protected alias (`@champion`, `@previous`) of a governed model moves only to where the
  audit log's latest champion move (an
  `approve` or `rollback` event) puts it, and only when the caller is the user who wrote that
  event, is one of the policy's approvers, and (for `approve`, under four eyes) did not propose
  the version. The event authorizes one move: from its `champion_before` to its
  `champion_after` (and `@previous` to what it implies); any later move needs a later event.
  Deleting the model, renaming it, or deleting a version that holds a protected alias would
  move an alias too, so they are refused.
- An audit log (`<model>-audit-log`) only grows: the one tag that may be written is the next
  event, chained to the last one (seq + 1, prev_hash, its own hash), written by the user it
  names in `mlflow_user`. Overwriting or deleting a tag, deleting or renaming the log, and
  creating it with events already in it are refused. An `approve` or `rollback` event is also
  checked against the policy when it is written, and a `policy_set` event must be written by
  one of the current policy's owners (the first one, which creates the log, by anyone allowed
  to create it).

Refusals are HTTP 403 with error code PERMISSION_DENIED and a message saying why."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from magenta_release.core import identity
from magenta_release.io.audit_log import EVENT_PREFIX, GENESIS, HEAD_TAG, LOG_SUFFIX, Event
from magenta_release.io.policy_store import SET_ACTION as POLICY_SET

if TYPE_CHECKING:
    from flask import Response

PROTECTED_ALIASES = ("champion", "previous")
CHAMPION_MOVES = ("approve", "rollback")


class Refused(Exception):
    """The request is refused; the text says why."""


class Registry(Protocol):
    """The two reads the rules need (the server's own registry store in production)."""

    def tags(self, name: str) -> dict[str, str] | None: ...

    def aliases(self, name: str) -> dict[str, int]: ...

    def is_admin(self, user: str) -> bool: ...


@dataclass(frozen=True)
class Rules:
    """What the latest `policy_set` event of a model's log says the server must enforce."""

    model: str
    approvers: tuple[str, ...]
    policy_owners: tuple[str, ...]
    four_eyes: bool

    @property
    def log(self) -> str:
        return f"{self.model}{LOG_SUFFIX}"

    @classmethod
    def from_log(cls, model: str, log: list[Event]) -> Rules | None:
        """The rules in force after `log`; None if no policy was ever set (not governed)."""
        for event in reversed(log):
            if event.action == POLICY_SET:
                return cls.from_event(model, event)
        return None

    @classmethod
    def from_event(cls, model: str, event: Event) -> Rules:
        d = event.details
        approvers, owners = _names(d.get("approvers")), _names(d.get("policy_owners"))
        four_eyes = d.get("four_eyes")
        if not (approvers and owners and isinstance(four_eyes, bool)):
            raise Refused(  # written by hand, not by `policy set`
                f"event {event.seq} of {model}{LOG_SUFFIX} sets a policy without approvers, "
                "policy_owners and four_eyes"
            )
        return cls(model, approvers, owners, four_eyes)


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return ()


# ---- the log ------------------------------------------------------------------------------
def chain(tags: Mapping[str, str]) -> list[Event]:
    """The log's events in order; Refused if the stored chain itself does not verify."""
    out: list[Event] = []
    prev = GENESIS
    for i, (key, raw) in enumerate(
        sorted((k, v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)), start=1
    ):
        try:
            event = Event(**json.loads(raw))
        except (TypeError, ValueError):
            raise Refused(f"audit event {key} is not a valid event; run `audit verify`") from None
        if (
            key != f"{EVENT_PREFIX}{i:08d}"
            or event.seq != i
            or event.prev_hash != prev
            or event.compute_hash() != event.hash
        ):
            raise Refused(f"the audit log does not verify at {key}; run `audit verify`")
        out.append(event)
        prev = event.hash
    return out


def proposers(log: list[Event], version: int | None) -> set[str]:
    return {
        who
        for e in log
        if e.action == "propose" and e.version == version
        for who in (e.actor, e.mlflow_user)
        if who
    }


def authorize_move(event: Event, log: list[Event], user: str, rules: Rules) -> None:
    """Refused unless `user` may make the champion move `event` records."""
    where = f"event {event.seq} ({event.action} of version {event.version})"
    if event.mlflow_user != user:
        raise Refused(f"{where} was written by {event.mlflow_user}, not by {user}")
    if not any(identity.same(user, a) for a in rules.approvers):
        raise Refused(f"{user} is not one of the stored policy's approvers ({where})")
    if event.action == "approve":
        if event.champion_after != event.version:
            raise Refused(f"{where} does not make its version the champion")
        if rules.four_eyes and any(identity.same(user, p) for p in proposers(log, event.version)):
            raise Refused(
                f"{user} proposed version {event.version} and cannot approve it too (four eyes)"
            )


def expected_aliases(log: list[Event]) -> dict[str, int | None]:
    """Where @champion and @previous must point after the log's champion moves: the same
    replay the client uses (`lifecycle.expected_state`), so the two can never disagree."""
    from magenta_release.core.lifecycle import expected_state

    state = expected_state(log)
    return {"champion": state.champion, "previous": state.previous}


# ---- the decisions --------------------------------------------------------------------------
def alias_move(rules: Rules, registry: Registry, user: str, alias: str, target: int | None) -> None:
    """Refused unless the audit log's latest champion move, made by `user`, puts `@alias` at
    `target` (None: deleted)."""
    what = f"@{alias} -> {target}" if target is not None else f"deleting @{alias}"
    log = chain(registry.tags(rules.log) or {})
    moves = [e for e in log if e.action in CHAMPION_MOVES]
    if not moves:
        raise Refused(
            f"{what} on {rules.model}: no approve or rollback event in {rules.log} authorizes "
            "it; use `magenta-release approve` or `rollback`"
        )
    latest = moves[-1]
    authorize_move(latest, log, user, rules)
    if expected_aliases(log)[alias] != target:
        raise Refused(
            f"{what} on {rules.model}: the latest champion move (event {latest.seq}, "
            f"{latest.action} of version {latest.version}) does not authorize it"
        )
    current = registry.aliases(rules.model).get("champion")
    if alias == "champion" and current not in {latest.champion_before, latest.champion_after}:
        raise Refused(
            f"{what} on {rules.model}: event {latest.seq} moves @champion from "
            f"{latest.champion_before}, but it is at {current}; an event authorizes one move"
        )


def append(registry: Registry, user: str, log_name: str, key: str, value: str) -> None:
    """Refused unless (key, value) is the next valid event of `log_name`, written by `user`
    and, for a champion move or a policy change, allowed by the policy in force."""
    tags = registry.tags(log_name) or {}
    if key in tags:
        raise Refused(f"{log_name} is append-only: {key} exists and cannot be overwritten")
    if not key.startswith(EVENT_PREFIX):
        return  # not an event: the chain does not read it
    log = chain(tags)
    seq = len(log) + 1
    prev = log[-1].hash if log else GENESIS
    try:
        event = Event(**json.loads(value))
    except (TypeError, ValueError):
        raise Refused(f"{log_name}: {key} is not a valid audit event") from None
    if key != f"{EVENT_PREFIX}{seq:08d}" or event.seq != seq:
        raise Refused(f"{log_name} is append-only: the next event is {EVENT_PREFIX}{seq:08d}")
    if event.prev_hash != prev:
        raise Refused(f"{log_name}: event {seq} is not chained to event {seq - 1}'s hash")
    if event.compute_hash() != event.hash:
        raise Refused(f"{log_name}: event {seq}'s hash does not match its content")
    if event.mlflow_user != user:
        raise Refused(
            f"{log_name}: event {seq} names {event.mlflow_user!r} as its MLflow user, but "
            f"{user!r} is writing it"
        )
    _authorize_event(registry, log_name[: -len(LOG_SUFFIX)], event, log, user)


def _authorize_event(
    registry: Registry, model: str, event: Event, log: list[Event], user: str
) -> None:
    """A policy change by an owner of the policy in force; a champion move as it allows."""
    rules = Rules.from_log(model, log)
    if event.action == POLICY_SET:
        Rules.from_event(model, event)  # it must say what the server will enforce
        if rules is None and log and not registry.is_admin(user):
            # a log from before stored policies: its first policy is an admin's to store
            raise Refused(
                f"{model}{LOG_SUFFIX} has events from before stored policies; an MLflow admin "
                "stores its first policy (magenta-release init or policy set)"
            )
        if rules is not None and not any(identity.same(user, o) for o in rules.policy_owners):
            raise Refused(
                f"{user} is not one of the policy owners of {model} "
                f"({', '.join(rules.policy_owners)}); only they may set its policy"
            )
    elif event.action in CHAMPION_MOVES:
        if rules is None:
            raise Refused(f"{model} has no policy in its audit log: nobody may move its champion")
        authorize_move(event, log, user, rules)


def _is_log(name: str) -> bool:
    return name.endswith(LOG_SUFFIX)


def _version(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Refused(f"version {raw!r} is not a version number") from None


def decide(registry: Registry, user: str, op: str, params: Mapping[str, Any]) -> None:
    """Refused if the operation `op` with request `params` breaks a rule; else None."""
    name = str(params.get("name", ""))
    if op == "rename_model":
        new = str(params.get("new_name", ""))
        if _governed(registry, name) or _is_log(name) or _is_log(new) or _governed(registry, new):
            raise Refused(
                f"renaming {name} to {new} is refused: released models and audit logs keep "
                "their names"
            )
    elif _is_log(name):
        _log_request(registry, user, op, name, params)
    else:
        rules = _governed(registry, name)
        if rules is None:
            return  # not governed by magenta-release
        if op in {"set_alias", "delete_alias"}:
            alias = str(params.get("alias", ""))
            if alias in PROTECTED_ALIASES:
                target = _version(params.get("version")) if op == "set_alias" else None
                alias_move(rules, registry, user, alias, target)
        else:
            _model_request(registry, op, name, params)


def _governed(registry: Registry, model: str) -> Rules | None:
    """The rules of `model` if its audit log has set a policy, else None."""
    if not model or _is_log(model):
        return None
    tags = registry.tags(f"{model}{LOG_SUFFIX}")
    return None if tags is None else Rules.from_log(model, chain(tags))


def _log_request(
    registry: Registry, user: str, op: str, name: str, params: Mapping[str, Any]
) -> None:
    if op == "set_tag":
        append(registry, user, name, str(params.get("key", "")), str(params.get("value")))
    elif op == "delete_tag":
        raise Refused(f"{name} is append-only: its tags cannot be deleted")
    elif op == "delete_model":
        raise Refused(f"{name} is an audit log and cannot be deleted")
    elif op == "create_model":
        keys = [str(t.get("key", "")) for t in params.get("tags") or [] if isinstance(t, dict)]
        if any(k.startswith(EVENT_PREFIX) for k in keys):
            raise Refused(f"{name} must start empty: events are appended one at a time")


def _model_request(registry: Registry, op: str, name: str, params: Mapping[str, Any]) -> None:
    if str(params.get("key", "")) == HEAD_TAG:
        if op == "delete_tag":
            raise Refused(f"{HEAD_TAG} of {name} records the audit log's head; it stays")
        if op == "set_tag":
            log = chain(registry.tags(f"{name}{LOG_SUFFIX}") or {})
            head = f"{len(log)}:{log[-1].hash}" if log else None
            if str(params.get("value", "")) != head:
                raise Refused(f"{HEAD_TAG} of {name} may only name the log's last event ({head})")
    if op == "delete_model":
        raise Refused(f"{name} is protected by the release policy and cannot be deleted")
    if op == "delete_version":
        version = _version(params.get("version"))
        held = [
            a for a, v in registry.aliases(name).items() if a in PROTECTED_ALIASES and v == version
        ]
        if held:
            raise Refused(
                f"version {version} of {name} holds @{', @'.join(held)}; it cannot be deleted"
            )


# ---- Flask glue -------------------------------------------------------------------------------
# Flask endpoint names of MLflow's registry handlers: the same for /api/ and /ajax-api/ routes
# and for every API version, so no path can slip past a prefix match.
ENDPOINTS = {
    "_set_registered_model_alias": "set_alias",
    "_delete_registered_model_alias": "delete_alias",
    "_set_registered_model_tag": "set_tag",
    "_delete_registered_model_tag": "delete_tag",
    "_delete_registered_model": "delete_model",
    "_rename_registered_model": "rename_model",
    "_create_registered_model": "create_model",
    "_delete_model_version": "delete_version",
}


class ServerRegistry:
    """The server's own registry store (no HTTP round trip, no client credentials)."""

    def __init__(self) -> None:
        from mlflow.server.handlers import _get_model_registry_store

        self._store = _get_model_registry_store()

    def _model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self._store.get_registered_model(name)  # type: ignore[no-untyped-call]
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def tags(self, name: str) -> dict[str, str] | None:
        model = self._model(name)
        return None if model is None else dict(model.tags or {})

    def is_admin(self, user: str) -> bool:
        from mlflow.exceptions import MlflowException
        from mlflow.server.auth import store as users

        try:
            return bool(users.get_user(user).is_admin)
        except MlflowException:  # unknown user
            return False

    def aliases(self, name: str) -> dict[str, int]:
        model = self._model(name)
        raw = {} if model is None else (model.aliases or {})
        if not isinstance(raw, dict):  # older entities: a list of alias objects
            raw = {a.alias: a.version for a in raw}
        return {str(a): int(v) for a, v in raw.items()}


def _params() -> dict[str, Any]:
    """The request's parameters, read the way MLflow's handlers read them."""
    from flask import request

    if request.method == "GET" or (request.method == "DELETE" and not request.is_json):
        return dict(request.args)
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _forbidden(why: str) -> Response:
    from flask import make_response

    res = make_response(json.dumps({"error_code": "PERMISSION_DENIED", "message": why}))
    res.status_code = 403
    res.mimetype = "application/json"
    return res


def check(registry: Callable[[], Registry] = ServerRegistry) -> Response | None:
    """Flask `before_request` hook, after MLflow's authentication: 403 when a rule is broken."""
    from flask import g, request

    op = ENDPOINTS.get(request.endpoint or "")
    if op is None or request.method == "OPTIONS":
        return None
    user = str(getattr(g, "mlflow_authenticated_user", "") or "")
    try:
        decide(registry(), user, op, _params())
    except Refused as exc:
        return _forbidden(f"magenta-release release policy: {exc}")
    return None
