"""What the attacks of issue 25 are written with: raw HTTP with basic-auth credentials, a plain
`MlflowClient`, and the audit log's format as anyone can read it from the store (each event is
canonical JSON hashed with SHA-256 and chained to the one before by `prev_hash`). Nothing here
imports magenta_release: an attacker's script does not go through the tool, and these helpers
must keep working while the package is restructured."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

EVENT_PREFIX = "event."
HEAD_TAG = "magenta.audit_head"
LOG_SUFFIX = "-audit-log"
STATUS_TAG = "release.status"
API = "/api/2.0/mlflow"


def canonical(data: Any) -> str:
    """The JSON form the log's hashes are taken of (read off any stored event)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_digest(files: dict[str, str]) -> str:
    """The digest recorded as `release.manifest_sha256` for a {path: sha256} manifest."""
    return sha256_text(json.dumps(files, sort_keys=True, separators=(",", ":")))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def forge(last: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The next event after `last`, correctly chained and hashed: what anyone who read one
    stored event can write (events are hashed, not signed)."""
    body = {k: v for k, v in last.items() if k != "hash"}
    body.update(
        seq=int(last["seq"]) + 1,
        time=now(),
        prev_hash=last["hash"],
        reason="",
        details={},
        version=None,
        status=None,
        evidence_sha256="",
        manifest_sha256="",
    )
    body.update(fields)
    body["hash"] = sha256_text(canonical(body))
    return body


def chain(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`events` re-sequenced and re-hashed from the genesis: a whole forged log."""
    out: list[dict[str, Any]] = []
    prev = "0" * 64
    for i, e in enumerate(events, start=1):
        body = {k: v for k, v in e.items() if k != "hash"}
        body.update(seq=i, prev_hash=prev)
        body["hash"] = prev = sha256_text(canonical(body))
        out.append(body)
    return out


def event_key(event: dict[str, Any]) -> str:
    return f"{EVENT_PREFIX}{int(event['seq']):08d}"


def double_encoded(body: dict[str, Any]) -> str:
    """A JSON body that is a JSON string holding the JSON object (MLflow decodes it twice)."""
    return json.dumps(json.dumps(body))


# What the tool's replay of a log implies for the registry, as an attacker re-implements it to
# make `status` and `audit verify` agree with a forged log.
DECISION_TAGS = {
    "approve": {
        "release.approved_by": "actor",
        "release.approved_at": "time",
        "release.approve_reason": "reason",
    },
    "rollback": {"release.rolled_back_by": "actor", "release.rolled_back_at": "time"},
}


def replay(events: list[dict[str, Any]]) -> tuple[dict[int, dict[str, str]], dict[str, int | None]]:
    """({version: tags it must carry}, {alias: version}) after `events`."""
    tags: dict[int, dict[str, str]] = {}
    champion = previous = challenger = None
    for e in events:
        action, v = e["action"], e["version"]
        if action == "repair":
            continue
        on = e["champion_before"] if action == "rollback" else v
        if (
            action in DECISION_TAGS
            and on is not None
            and not (action == "rollback" and on == e["champion_after"])
        ):
            tags.setdefault(on, {}).update({k: str(e[f]) for k, f in DECISION_TAGS[action].items()})
        if v is not None and e["status"]:
            tags.setdefault(v, {})[STATUS_TAG] = e["status"]
        if action == "propose" and e["status"] == "pending_approval":
            challenger = v
        if action in {"approve", "reject"} and challenger == v:
            challenger = None
        if action in {"approve", "rollback"}:
            before = e["champion_before"]
            if before is not None and before != e["champion_after"]:
                tags.setdefault(before, {})[STATUS_TAG] = (
                    "retired" if action == "approve" else "rolled_back"
                )
            if action == "approve":
                previous = before if before is not None else previous
            else:
                previous = before
            champion = e["champion_after"]
    return tags, {"champion": champion, "previous": previous, "challenger": challenger}


@dataclass
class Attacker:
    """One authenticated user of the MLflow server, writing whatever the server accepts."""

    url: str
    user: str
    password: str
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.auth = (self.user, self.password)

    # ---- raw HTTP ------------------------------------------------------------------------
    def http(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: str | bytes | None = None,
        content_type: str | None = "application/json",
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        """One request exactly as given: `raw` bytes, or `body` as JSON, with this
        Content-Type (None: no Content-Type header at all)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        # requests adds no Content-Type of its own for str/bytes data
        headers = {"Content-Type": content_type} if content_type is not None else {}
        return self.session.request(
            method, self.url + path, data=data, headers=headers, params=params, timeout=60
        )

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self.http(method, path, **kwargs)
        assert r.status_code == 200, (method, path, r.status_code, r.text[:500])
        return dict(r.json()) if r.text.strip() else {}

    # ---- reads -----------------------------------------------------------------------------
    def model(self, name: str) -> dict[str, Any] | None:
        r = self.http("GET", f"{API}/registered-models/get", params={"name": name})
        if r.status_code == 404:
            return None
        assert r.status_code == 200, (name, r.status_code, r.text[:300])
        return dict(r.json()["registered_model"])

    def tags(self, name: str) -> dict[str, str] | None:
        found = self.model(name)
        return None if found is None else {t["key"]: t["value"] for t in found.get("tags", [])}

    def aliases(self, name: str) -> dict[str, int]:
        found = self.model(name) or {}
        return {a["alias"]: int(a["version"]) for a in found.get("aliases", [])}

    def versions(self, name: str) -> dict[int, dict[str, Any]]:
        """{version: {"run_id", "source", "tags"}} of a registered model."""
        r = self.http(
            "GET",
            f"{API}/model-versions/search",
            params={"filter": f"name='{name}'", "max_results": "1000"},
        )
        assert r.status_code == 200, r.text[:300]
        return {
            int(v["version"]): {
                "run_id": v.get("run_id"),
                "source": v.get("source"),
                "tags": {t["key"]: t["value"] for t in v.get("tags", [])},
            }
            for v in r.json().get("model_versions", [])
        }

    def events(self, model: str) -> list[dict[str, Any]]:
        tags = self.tags(f"{model}{LOG_SUFFIX}") or {}
        return [json.loads(tags[k]) for k in sorted(tags) if k.startswith(EVENT_PREFIX)]

    def snapshot(self, model: str) -> dict[str, Any]:
        """Everything governed about `model`: its tags, aliases, versions and its log."""
        return {
            "tags": self.tags(model),
            "aliases": self.aliases(model),
            "versions": self.versions(model),
            "log": self.tags(f"{model}{LOG_SUFFIX}"),
        }

    # ---- plain MLflow ----------------------------------------------------------------------
    @contextmanager
    def client(self) -> Iterator[Any]:
        """A plain MlflowClient logged in as this user (MLflow reads credentials from the
        environment at each request)."""
        from mlflow import MlflowClient

        keys = {"MLFLOW_TRACKING_USERNAME": self.user, "MLFLOW_TRACKING_PASSWORD": self.password}
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update(keys)
        try:
            yield MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    # ---- writes an attacker makes ------------------------------------------------------------
    def set_model_tag(self, name: str, key: str, value: str) -> requests.Response:
        return self.http(
            "POST",
            f"{API}/registered-models/set-tag",
            body={"name": name, "key": key, "value": value},
        )

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> requests.Response:
        return self.http(
            "POST",
            f"{API}/model-versions/set-tag",
            body={"name": name, "version": str(version), "key": key, "value": value},
        )

    def set_alias(self, name: str, alias: str, version: int) -> requests.Response:
        return self.http(
            "POST",
            f"{API}/registered-models/alias",
            body={"name": name, "alias": alias, "version": str(version)},
        )

    def append(self, model: str, **fields: Any) -> tuple[requests.Response, dict[str, Any]]:
        """Write the next event of `model`'s log, chained to the last one, as this user."""
        last = self.events(model)[-1]
        event = forge(last, **{"actor": self.user, "mlflow_user": self.user, **fields})
        r = self.set_model_tag(f"{model}{LOG_SUFFIX}", event_key(event), canonical(event))
        return r, event

    def cover_up(self, model: str) -> list[int]:
        """Make the registry say what the (forged) log says: statuses, who decided, aliases,
        and the log's head on the model. Returns the HTTP codes of the writes."""
        events = self.events(model)
        if not events:
            return []
        tags, aliases = replay(events)
        versions = self.versions(model)
        codes = []
        for v, wanted in sorted(tags.items()):
            have = versions.get(v, {}).get("tags", {})
            for key, value in wanted.items():
                if have.get(key) != value:
                    codes.append(self.set_version_tag(model, v, key, value).status_code)
        current = self.aliases(model)
        for alias in ("champion", "previous", "challenger"):
            target = aliases[alias]
            if target is not None and current.get(alias) != target:
                codes.append(self.set_alias(model, alias, target).status_code)
        last = events[-1]
        codes.append(
            self.set_model_tag(model, HEAD_TAG, f"{last['seq']}:{last['hash']}").status_code
        )
        return codes


def attempt(step: Callable[[], Any]) -> Any:
    """Run one step of an attack; a refusal (an MLflow error) ends nothing: the test judges
    the end state, not each step."""
    from mlflow.exceptions import MlflowException

    try:
        return step()
    except MlflowException as exc:
        return exc
