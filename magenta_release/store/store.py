"""The store: one explicit `MlflowClient` built from settings (no global tracking URI), bound
to one registered model and its release policy, and composed of the three interfaces of MLflow
the commands use (`runs`, `registry`, `tags`), plus who is acting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magenta_release.errors import BadInput, PolicyRefused, StoreUnreachable
from magenta_release.policy import Policy
from magenta_release.settings import Settings, disable_telemetry
from magenta_release.store.errors import translate
from magenta_release.store.local import db_revision
from magenta_release.store.registry import Registry
from magenta_release.store.residency import check_residency
from magenta_release.store.runs import Runs
from magenta_release.store.tags import TagStorage

if TYPE_CHECKING:
    from mlflow import MlflowClient


class Store:
    """An MLflow tracking + registry store, bound to one registered model and the release
    policy stored for it (`policy_store`). It owns the client and composes the three
    interfaces it is used through: `runs` (experiment, runs, artifacts), `registry` (the
    model's versions and aliases) and `tags` (registered-model tags as storage)."""

    def __init__(self, settings: Settings, policy: Policy, client: Any = None) -> None:
        self.settings = settings
        self.policy = policy
        self.tracking_uri = settings.resolved_tracking_uri()
        self.client: MlflowClient = client if client is not None else _client(self.tracking_uri)
        self.name = policy.registered_name
        self.runs = Runs(self.client, settings, policy.model.experiment, self.tracking_uri)
        self.registry = Registry(self.client, self.name, self.tracking_uri)
        self.tags = TagStorage(self.client)

    def governed_by(self, policy: Policy) -> Store:
        """The same store bound to `policy` (and the model it names); shares the client."""
        return Store(self.settings, policy, self.client)

    # ---- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, model: str | None = None) -> Store:
        """Open the store named by settings, bound to `model` (else MAGENTA_RELEASE_MODEL,
        else the only model governed in it) under the policy stored for that model."""
        from magenta_release import policy_store

        client = cls.connect(settings)
        name = policy_store.default_model(client, model or settings.model)
        policy = policy_store.current(client, name)
        return cls(settings, policy, client)

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
        if settings.is_local and db_revision(settings.db_path) is None:
            raise StoreUnreachable(
                f"{settings.db_path} is not a readable MLflow database; "
                "restore it from a backup or move it away and run init"
            )
        return _client(settings.resolved_tracking_uri())

    def check_residency(self) -> None:
        """Refuse (exit 3) before any write if the tracking host or the experiment's artifact
        location is outside the policy's allow-lists."""
        check_residency(self.policy.residency, self.tracking_uri, self.runs.artifact_location)

    def actor(self, by: str | None = None) -> str:
        """Who is acting, normalised (`identity.normalise`). Where the store authenticates
        (server mode), it is the authenticated user, and `--by` may only name that user; in
        embedded mode it is the typed name (--by, else MAGENTA_RELEASE_USER, else the OS
        login), which nothing verifies."""
        from magenta_release import identity

        typed = self.settings.actor(by)
        authenticated = self.whoami()
        if authenticated:
            if (by or self.settings.user) and not identity.same(typed, authenticated):
                raise PolicyRefused(
                    f"--by {typed} is not the authenticated MLflow user {authenticated}; "
                    "act as yourself (leave --by out) or log in as that person"
                )
            return identity.normalise(authenticated)
        return identity.normalise(typed)

    def model_permission(self) -> str | None:
        """The caller's effective MLflow permission on the registered model (READ, EDIT,
        MANAGE, ...) where the server has permissions; None in embedded mode or against a
        server without authentication. A dry probe: it writes nothing."""
        from mlflow.exceptions import MlflowException
        from mlflow.server import get_app_client

        user = self.whoami()
        if self.settings.is_local or not user:
            return None
        client = get_app_client("basic-auth", tracking_uri=self.tracking_uri)
        with translate(f"reading your permission on {self.name!r}"):
            try:
                found = client.get_user_permission(user, "registered_model", self.name)
            except MlflowException as exc:
                if exc.error_code == "ENDPOINT_NOT_FOUND" or "404" in str(exc.message):
                    return None  # no authentication on this server: nothing to probe
                raise
        return str(found.permission)

    def whoami(self) -> str | None:
        """The identity the server will authenticate: the e-mail in the IAP ID token when the
        tracking server is behind IAP, else the basic-auth user in server mode, else None."""
        import os

        from magenta_release import iap

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
    from mlflow import MlflowClient

    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:  # MLflow raises several types for an unknown scheme
        raise BadInput(
            f"tracking URI {tracking_uri!r} is not supported; use an http(s):// MLflow "
            "server, postgresql://... or leave it unset for the local store"
        ) from exc
