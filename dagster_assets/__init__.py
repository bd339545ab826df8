"""Dagster code location for magenta-release: `dagster dev -m dagster_assets`. Needs the
`[dagster]` extra (`pip install 'magenta-release[dagster]'`)."""

from magenta_release.core.extras import require
from magenta_release.core.telemetry import disable_telemetry

require("dagster", "dagster_assets (the Dagster integration)")
# Before Dagster or MLflow do anything in this process: both phone home by default, and no
# data may leave Europe. (dagster_home/dagster.yaml switches Dagster's off for the instance.)
disable_telemetry()

from dagster_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
