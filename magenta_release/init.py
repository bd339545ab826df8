"""`init`: create the embedded store (or prepare a server store) so the other commands work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from magenta_release.settings import Settings
from magenta_release.store import Store, init_local_store


@dataclass(frozen=True)
class InitResult:
    tracking_uri: str
    artifact_location: str
    policy_path: str
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "artifact_location": self.artifact_location,
            "policy": self.policy_path,
            "created": self.created,
        }


def init(settings: Settings) -> InitResult:
    """Create the store if missing (idempotent) and its experiment with an explicit artifact
    location; check residency before writing anything to a server."""
    created = False
    if settings.is_local:
        _, created = init_local_store(settings)
    store = Store.open(settings)
    store.check_residency()
    store.experiment_id(create=True)
    return InitResult(
        store.tracking_uri, store.artifact_location(), str(settings.policy_path()), created
    )
