"""Registered-model tags as storage: the audit log, its chain head and the release lock
live in tags of (helper) registered models, and one atomic create is the lock's primitive."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magenta_release.io.store.errors import EXISTS, MISSING, _done, or_none, translate
from magenta_release.io.store.registry import ensure_registered_model

if TYPE_CHECKING:
    from mlflow import MlflowClient


class TagStorage:
    """Tags of registered models, named explicitly (they are not the governed model's
    versions: the audit log is a model of its own)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def model_tags(self, name: str) -> dict[str, str]:
        return self.model_tags_or_none(name) or {}

    def model_tags_or_none(self, name: str) -> dict[str, str] | None:
        """The tags of registered model `name`; None if it does not exist."""
        with translate(f"reading {name!r}"):
            model = or_none(lambda: self.client.get_registered_model(name))
        return None if model is None else dict(model.tags or {})

    def set_model_tag(
        self, name: str, key: str, value: str, *, create: bool = True, description: str = ""
    ) -> None:
        """Set a tag on a registered model, creating the model first unless the caller knows
        it exists (a create attempt on an existing model is a failed write)."""
        if create:
            ensure_registered_model(self.client, name, description)
        with translate(f"writing {name!r}"):
            self.client.set_registered_model_tag(name, key, value)

    def try_create_model(self, name: str, tags: dict[str, str]) -> bool:
        """Atomically create a registered model; False if it exists already."""
        with translate(f"creating {name!r}"):
            # On a name clash MLflow reads the existing model to word its error; if that
            # model was deleted in between, the clash surfaces as RESOURCE_DOES_NOT_EXIST.
            # Either way our insert failed.
            return _done(
                lambda: self.client.create_registered_model(name, tags=tags), EXISTS, MISSING
            )

    def model_created(self, name: str) -> tuple[int, dict[str, str]] | None:
        with translate(f"reading {name!r}"):
            m = or_none(lambda: self.client.get_registered_model(name))
        return None if m is None else (int(m.creation_timestamp or 0), dict(m.tags or {}))

    def delete_model(self, name: str) -> bool:
        with translate(f"deleting {name!r}"):
            return _done(lambda: self.client.delete_registered_model(name), MISSING)
