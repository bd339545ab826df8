"""The model files of a version, for the use cases: downloaded and checked against the
manifest its first propose event recorded in the audit log, refused if pickle, then loaded from
those very files (`io.model_files`). And which version a name means: `resolve` turns
`champion`, another alias or a number into a version that may be served."""

from __future__ import annotations

from pathlib import Path

from magenta_release.app.context import Context
from magenta_release.app.services import lifecycle
from magenta_release.core import keys
from magenta_release.core.errors import BadInput, PolicyRefused
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import SERVABLE
from magenta_release.io import model_files
from magenta_release.io.model_files import Verified

ALIASES = ("champion", "challenger", "previous")


def fetch(ctx: Context, version: VersionInfo, dst: Path) -> Verified:
    """Download `version` into `dst`, verified against its proposal's manifest in the log."""
    proposed = lifecycle.state(ctx).manifests.get(version.version)
    return model_files.fetch_verified(ctx.registry, version, dst, proposed)


def resolve(ctx: Context, model: str) -> VersionInfo:
    """`champion` (or another alias) or a version number that passed its gates. Refuses
    (IntegrityAlert, exit 3) while the registry disagrees with the audit log: an alias moved
    outside magenta-release must never be served."""
    lifecycle.check(ctx)
    if model.isdigit():
        v = ctx.registry.version(model)
    else:
        alias = model.lstrip("@")
        if alias not in ALIASES:
            raise BadInput(
                f"--model {model!r} is neither champion/challenger/previous nor a version number"
            )
        found = ctx.registry.alias(alias)
        if found is None:
            raise PolicyRefused(
                f"there is no @{alias} now; see `magenta-release status` for what there is"
            )
        v = found
    # The same rule for an alias and a number: @challenger is a proposal nobody approved yet.
    if v.tags.get(keys.PASSED_GATES) != "true" or v.status not in SERVABLE:
        raise PolicyRefused(
            f"version {v.version} is {v.status or 'not proposed'}; only versions that were "
            "approved once can be served (approve it first)"
        )
    return v
