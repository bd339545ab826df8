"""`init`: create the embedded store (or prepare a server store) so the other commands work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services.policies import set_policy
from magenta_release.core.policy import load_policy
from magenta_release.core.settings import Settings
from magenta_release.io import policy_store
from magenta_release.io.store import Store, init_local_store

INIT_REASON = "initial policy (magenta-release init)"


@dataclass(frozen=True)
class InitResult:
    tracking_uri: str
    artifact_location: str
    model: str
    policy: policy_store.PolicyVersion
    created: bool
    note: str = ""  # why the policy file was not stored, when it was not

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "artifact_location": self.artifact_location,
            "model": self.model,
            "policy": self.policy.to_json(),
            "created": self.created,
            "note": self.note or None,
        }


def init(settings: Settings) -> InitResult:
    """Create the store if missing and govern the model named by the policy file
    (MAGENTA_RELEASE_POLICY, else the template) with it as version 1, unless that model
    already has a policy. Idempotent: an initialised store is left as it is. Residency is
    checked before anything is written to a server."""
    created = False
    if settings.is_local:
        _, created = init_local_store(settings)
    path = settings.init_policy_path()
    wanted = load_policy(path)
    name = wanted.registered_name
    store = Store.open(settings)
    ctx = Context(store, name)
    if not policy_store.versions(ctx.log):
        set_policy(store, path, reason=INIT_REASON, model=name)
        ctx.reread()
    ctx.check_residency()
    ctx.runs.experiment_id(create=True)
    current = ctx.policy_version
    note = ""
    if current.sha256 != wanted.sha256:
        note = (
            f"{path} differs from the stored policy v{current.version} of {name}; init does "
            "not change a stored policy (use magenta-release policy set)"
        )
    return InitResult(
        store.tracking_uri, ctx.runs.artifact_location(), name, current, created, note
    )
