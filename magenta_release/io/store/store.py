"""The gateway to one MLflow store: one explicit `MlflowClient` built from settings (no
global tracking URI) and the three interfaces of MLflow the tool uses, each for what it names:
`runs(experiment)` (experiments, runs, artifacts), `registry(model)` (a model's versions and
aliases) and `tags` (registered-model tags as storage), plus who the store authenticates. It
knows no policy and no governed model: those travel in the use case's context."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from magenta_release.core.errors import BadInput, StoreUnreachable
from magenta_release.core.extras import require
from magenta_release.core.policy import ResidencySection
from magenta_release.core.settings import Settings, disable_telemetry
from magenta_release.io.store.embedded import SCHEMA_REVISION, EmbeddedClient
from magenta_release.io.store.errors import error_code, translate
from magenta_release.io.store.local import db_revision
from magenta_release.io.store.registry import Registry
from magenta_release.io.store.residency import check_residency
from magenta_release.io.store.runs import Runs
from magenta_release.io.store.tags import TagStorage

if TYPE_CHECKING:
    from mlflow import MlflowClient


class Store:
    """An MLflow tracking + registry store. Transport only: it owns the client and hands out
    the interfaces it is used through, each bound to the experiment or model asked for."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.tracking_uri = settings.resolved_tracking_uri()
        self.client: MlflowClient = client if client is not None else _client(self.tracking_uri)
        self.tags = TagStorage(self.client)
        self._runs: dict[str, Runs] = {}
        self._registries: dict[str, Registry] = {}

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """The store named by settings; the local store must exist (`init`)."""
        return cls(settings, cls.connect(settings))

    @staticmethod
    def connect(settings: Settings) -> MlflowClient:
        """A client for the store named by settings; the local store must exist (`init`)."""
        if settings.is_local and settings.home_dir.exists() and not settings.home_dir.is_dir():
            raise BadInput(
                f"store path {settings.home_dir} is a file, not a folder; "
                "set MAGENTA_RELEASE_HOME to a store folder"
            )
        if settings.is_local and not settings.db_path.exists():
            raise BadInput(
                f"no store at {settings.home_dir}; run `magenta-release init` first "
                "(or set MAGENTA_RELEASE_HOME / MLFLOW_TRACKING_URI)"
            )
        revision = db_revision(settings.db_path) if settings.is_local else None
        if settings.is_local and revision is None:
            raise StoreUnreachable(
                f"{settings.db_path} is not a readable MLflow database; "
                "restore it from a backup or move it away and run init"
            )
        uri = settings.resolved_tracking_uri()
        if revision == SCHEMA_REVISION:  # reads without MLflow; writes build its client
            reader = EmbeddedClient(settings.db_path, uri, lambda: _client(uri))
            return cast("MlflowClient", reader)
        return _client(uri)

    @property
    def is_local(self) -> bool:
        return self.settings.is_local

    @property
    def sqlite_path(self) -> Path | None:
        """The database file when the store is SQLite (the embedded store, or a `sqlite://`
        tracking URI naming one): such a store is one machine's, locked with flock."""
        uri = self.tracking_uri
        if not uri.startswith("sqlite:///"):
            return None
        return Path(unquote(uri.removeprefix("sqlite:///").split("?", 1)[0])).resolve()

    def runs(self, experiment: str) -> Runs:
        """The runs of `experiment` (one interface object per experiment and store)."""
        if experiment not in self._runs:
            self._runs[experiment] = Runs(self.client, self.settings, experiment, self.tracking_uri)
        return self._runs[experiment]

    def registry(self, model: str) -> Registry:
        """The versions and aliases of registered model `model`."""
        if model not in self._registries:
            self._registries[model] = Registry(self.client, model, self.tracking_uri)
        return self._registries[model]

    def check_residency(self, residency: ResidencySection, experiment: str) -> None:
        """Refuse (exit 3) before any write if the tracking host or the experiment's artifact
        location is outside the allow-lists."""
        check_residency(residency, self.tracking_uri, self.runs(experiment).artifact_location)

    def model_permission(self, model: str) -> str | None:
        """The caller's effective MLflow permission on registered model `model` (READ, EDIT,
        MANAGE, ...) where the server has permissions; None in embedded mode or against a
        server without authentication. A dry probe: it writes nothing."""
        user = self.whoami()
        if self.settings.is_local or not user:
            return None
        # MLflow's auth client lives in mlflow.server, which imports Flask (full `mlflow`)
        require("flask", "probing your MLflow permission on the server")
        from mlflow.server import get_app_client

        client = get_app_client("basic-auth", tracking_uri=self.tracking_uri)
        with translate(f"reading your permission on {model!r}"):
            try:
                found = client.get_user_permission(user, "registered_model", model)
            except Exception as exc:
                code = error_code(exc)
                if code is None:
                    raise
                if code == "ENDPOINT_NOT_FOUND" or "404" in str(getattr(exc, "message", exc)):
                    return None  # no authentication on this server: nothing to probe
                raise
        return str(found.permission)

    def whoami(self) -> str | None:
        """The identity the server will authenticate: the e-mail in the IAP ID token when the
        tracking server is behind IAP, else the basic-auth user in server mode, else None."""
        import os

        from magenta_release.io import iap

        if self.settings.is_local:
            return None
        if iap.active():
            try:
                return iap.identity()
            except iap.IapCredentialsError as exc:
                raise StoreUnreachable(f"reaching the MLflow server through IAP: {exc}") from exc
        return os.environ.get("MLFLOW_TRACKING_USERNAME")


def _client(tracking_uri: str) -> MlflowClient:
    disable_telemetry()
    if tracking_uri.startswith(("postgresql://", "postgresql+psycopg://")):
        require("psycopg", "a postgresql:// tracking URI")  # SQLAlchemy's driver for it
    from mlflow import MlflowClient

    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:  # MLflow raises several types for an unknown scheme
        raise BadInput(
            f"tracking URI {tracking_uri!r} is not supported; use an http(s):// MLflow "
            "server, postgresql://... or leave it unset for the local store"
        ) from exc
