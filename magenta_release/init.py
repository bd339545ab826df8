"""`init`: create the embedded store (or prepare a server store) so the other commands work."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from magenta_release.settings import Settings
from magenta_release.store import POLICY_FILE, TEMPLATE_DIR, Store, init_local_store


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
    elif settings.policy is None and not settings.policy_path().exists():
        # Server mode keeps no local store, but the policy still comes from a file: start from
        # the template, as a local store does (MAGENTA_RELEASE_POLICY points elsewhere).
        settings.policy_path().parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATE_DIR / POLICY_FILE, settings.policy_path())
    store = Store.open(settings)
    store.check_residency()
    store.experiment_id(create=True)
    return InitResult(
        store.tracking_uri, store.artifact_location(), str(settings.policy_path()), created
    )
