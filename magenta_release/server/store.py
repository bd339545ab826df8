"""The release authority's access to the store: the MLflow server's own database and artifact
destination, never the REST API (whose writes to governed names `guard` refuses for everyone).

`ServerStore` is the gateway the use cases already run on (`io.store.Store`), bound to the
server's backend store URI, so the authority runs the same code as an embedded store does;
what differs is where bytes and identity come from:

- artifacts: the server proxies them (`--artifacts-destination`), so an `mlflow-artifacts:/X`
  URI is the path X of the destination repository (`_get_artifact_repo_mlflow_artifacts`);
  nothing is read from a path a caller names outside it;
- the actor is the authenticated user of the request (basic-auth or the IAP e-mail);
- an audit event is inserted, never upserted: one transaction takes a per-log advisory lock
  (PostgreSQL), checks that the event follows the stored chain and inserts the tag row, whose
  primary key refuses a second event with the same key (SQLite: the same insert is an atomic
  create-if-absent). The store's own `set_registered_model_tag` is a merge: it would replace an
  event written meanwhile.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflow import MlflowClient

from magenta_release.core.audit import EVENT_PREFIX, LOG_SUFFIX, Event, event_key
from magenta_release.core.errors import (
    BadInput,
    IntegrityViolation,
    ReleaseError,
    StoreUnreachable,
)
from magenta_release.core.policy import ResidencySection
from magenta_release.core.settings import Settings
from magenta_release.io.store import Registry, Runs, Store, TagStorage, VersionInfo
from magenta_release.io.store.errors import translate
from magenta_release.io.store.registry import ensure_registered_model
from magenta_release.io.store.residency import check_residency

ARTIFACTS_SCHEME = "mlflow-artifacts"


def backend_uri() -> str:
    """The backend store URI `mlflow server` was started with (its workers get it as env)."""
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

    uri = os.environ.get(BACKEND_STORE_URI_ENV_VAR)
    if not uri:
        raise StoreUnreachable("the release authority runs only inside `mlflow server`")
    return uri


def destination() -> Any:
    """The server's artifact destination; the authority needs proxied artifacts."""
    from mlflow.server.constants import ARTIFACTS_DESTINATION_ENV_VAR
    from mlflow.server.handlers import _get_artifact_repo_mlflow_artifacts

    if not os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR):
        raise StoreUnreachable(
            "the MLflow server does not proxy artifacts: the release authority needs "
            "`mlflow server --artifacts-destination ...` (deploy/mlflow-server/entrypoint.sh)"
        )
    return _get_artifact_repo_mlflow_artifacts()  # type: ignore[no-untyped-call]


def destination_path(uri: str) -> str:
    """The path inside the artifact destination that an `mlflow-artifacts:` URI names;
    BadInput for any other URI, or one that climbs out (`..`)."""
    parsed = urlparse(uri)
    if parsed.scheme != ARTIFACTS_SCHEME:
        raise BadInput(
            f"{uri[:200]} is not in this server's artifact store (mlflow-artifacts:/...); the "
            "release authority reads model files only from there"
        )
    raw = parsed.path.lstrip("/")
    path = posixpath.normpath(raw) if raw else ""
    if path.startswith("..") or "/../" in f"/{raw}/" or path in {".", ""}:
        raise BadInput(f"{uri[:200]} does not name a folder of the artifact store")
    return path


class ServerClient(MlflowClient):
    """An MlflowClient on the server's own database whose artifact calls go to the server's
    artifact destination (a client on a database URI cannot resolve `mlflow-artifacts:`)."""

    def _artifact_uri(self, run_id: str, path: str | None) -> str:
        base = str(self.get_run(run_id).info.artifact_uri).rstrip("/")
        return f"{base}/{path.strip('/')}" if path else base

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        return download(self._artifact_uri(run_id, path), Path(dst_path or tempfile.mkdtemp()))

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        destination().log_artifacts(
            local_dir, destination_path(self._artifact_uri(run_id, artifact_path))
        )

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="magenta-authority-") as tmp:
            (Path(tmp) / name).write_text(text, encoding="utf-8")
            destination().log_artifact(
                str(Path(tmp) / name), destination_path(self._artifact_uri(run_id, folder or None))
            )


def download(uri: str, dst: Path) -> str:
    """Download `uri` (a file or a folder of the artifact destination) into `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    with translate(f"reading {uri[:200]} from the artifact store"):
        return str(destination().download_artifacts(destination_path(uri), str(dst)))


def resolve(client: MlflowClient, uri: str) -> str:
    """`runs:/RUN/PATH` as the `mlflow-artifacts:` URI of that run's artifact; other URIs as
    they are (then checked by `destination_path`)."""
    parsed = urlparse(uri)
    if parsed.scheme != "runs":
        return uri
    run_id, _, path = (parsed.netloc + parsed.path).strip("/").partition("/")
    with translate(f"reading run {run_id}"):
        base = str(client.get_run(run_id).info.artifact_uri).rstrip("/")
    return f"{base}/{path}" if path else base


class ServerRegistry(Registry):
    def download_version(self, version: VersionInfo, dst: Path) -> Path:
        return Path(download(resolve(self.client, version.source), dst))


class ServerRuns(Runs):
    def download_uri(self, uri: str, dst: Path) -> Path:
        return Path(download(resolve(self.client, uri), dst))


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for one audit log."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class ServerTags(TagStorage):
    """Tags through the server's database; audit events by insert only (see the module)."""

    def set_model_tag(
        self, name: str, key: str, value: str, *, create: bool = True, description: str = ""
    ) -> None:
        if not (name.endswith(LOG_SUFFIX) and key.startswith(EVENT_PREFIX)):
            super().set_model_tag(name, key, value, create=create, description=description)
            return
        if create:
            ensure_registered_model(self.client, name, description)
        with translate(f"appending to {name!r}"):
            append_event(name, key, value)


def append_event(log: str, key: str, value: str) -> None:
    """Insert event `key` into `log` in one transaction: the per-log advisory lock, the chain
    checked against what is stored, then an INSERT (a duplicate key raises, nothing is
    overwritten). IntegrityViolation when the event does not follow the stored chain."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_model_registry_store
    from mlflow.store.model_registry.dbmodels.models import (
        SqlRegisteredModel,
        SqlRegisteredModelTag,
    )
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    event = Event.from_json(value)
    if event is None:
        raise BadInput(f"{key} of {log} is not an audit event")
    store: Any = _get_model_registry_store()
    try:  # the session maker wraps whatever is raised inside it into an MlflowException
        with store.ManagedSessionMaker(read_only=False) as session:
            if store.db_type == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(log)})
            model = session.query(SqlRegisteredModel).filter(SqlRegisteredModel.name == log).one()
            stored = {
                t.key: t.value
                for t in session.query(SqlRegisteredModelTag).filter(
                    SqlRegisteredModelTag.name == log,
                    SqlRegisteredModelTag.key.like(f"{EVENT_PREFIX}%"),
                )
            }
            _check_follows(log, key, event, stored)
            session.add(
                SqlRegisteredModelTag(workspace=model.workspace, name=log, key=key, value=value)
            )
            session.flush()
    except MlflowException as exc:
        cause = exc.__cause__
        if isinstance(cause, ReleaseError):
            raise cause from None
        if isinstance(cause, IntegrityError):
            raise IntegrityViolation(
                f"{log}: event {key} was written by another change meanwhile; nothing was "
                "overwritten — run the command again"
            ) from exc
        raise


def _check_follows(log: str, key: str, event: Event, stored: dict[str, str]) -> None:
    seq = len(stored) + 1
    last = (
        Event.from_json(stored[event_key(seq - 1)])
        if seq > 1 and event_key(seq - 1) in stored
        else None
    )
    if key != event_key(seq) or event.seq != seq or (seq > 1 and last is None):
        raise IntegrityViolation(
            f"{log}: the next event is {event_key(seq)}, not {key}; another change landed "
            "meanwhile — run the command again"
        )
    if event.prev_hash != (last.hash if last is not None else "0" * 64):
        raise IntegrityViolation(f"{log}: event {seq} is not chained to the stored event {seq - 1}")
    if event.compute_hash() != event.hash:
        raise IntegrityViolation(f"{log}: event {seq}'s hash does not match its content")


class ServerStore(Store):
    """The gateway of one request of the release authority (see the module docstring)."""

    def __init__(self, user: str) -> None:
        uri = backend_uri()
        super().__init__(
            Settings(tracking_uri=uri), ServerClient(tracking_uri=uri, registry_uri=uri)
        )
        self.tags = ServerTags(self.client)
        self.user = user

    def runs(self, experiment: str) -> Runs:
        if experiment not in self._runs:
            self._runs[experiment] = ServerRuns(
                self.client, self.settings, experiment, self.tracking_uri
            )
        return self._runs[experiment]

    def registry(self, model: str) -> Registry:
        if model not in self._registries:
            self._registries[model] = ServerRegistry(self.client, model, self.tracking_uri)
        return self._registries[model]

    def whoami(self) -> str | None:
        return self.user

    def model_permission(self, model: str) -> str | None:
        return None  # the authority decides by the stored policy, not by MLflow grants

    def check_residency(self, residency: ResidencySection, experiment: str) -> None:
        # Where the files go; the tracking host is the one the caller reached, which the
        # caller's own check (before it asked) compared with the policy. The database behind
        # the server is not a tracking host.
        check_residency(residency, "", self.runs(experiment).artifact_location)
