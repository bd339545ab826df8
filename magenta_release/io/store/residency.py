"""Data residency: refuse before any write when the tracking host or the experiment's
artifact location is outside the policy's allow-lists."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from magenta_release.core.errors import IntegrityViolation
from magenta_release.core.policy import ResidencySection


def check_residency(
    res: ResidencySection, tracking_uri: str, artifact_location: Callable[[], str]
) -> None:
    """Refuse (exit 3) if the tracking host or the artifact location is not allowed. The
    location is only read once the host is known to be allowed: reading it talks to the host."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in {"sqlite", ""} and parsed.hostname not in res.allowed_tracking_hosts:
        raise IntegrityViolation(
            f"tracking host {parsed.hostname!r} is not in the policy's "
            f"allowed_tracking_hosts {list(res.allowed_tracking_hosts)}; add it to "
            "[residency] only if it is in an allowed region"
        )
    location = artifact_location()
    if not _location_allowed(location, res.allowed_artifact_locations):
        raise IntegrityViolation(
            f"artifact location {location!r} is not in the policy's "
            f"allowed_artifact_locations {list(res.allowed_artifact_locations)}; "
            "store artifacts in an allowed location"
        )


def _location_allowed(location: str, allowed: tuple[str, ...]) -> bool:
    for prefix in allowed:
        if prefix.startswith("gs://"):
            bucket = prefix.rstrip("/") + "/"
            if location == prefix.rstrip("/") or location.startswith(bucket):
                return True
        elif location.startswith(prefix):
            return True
    return False
