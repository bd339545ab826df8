"""Dagster code location for magenta-release: `dagster dev -m dagster_assets`."""

from magenta_release.core.telemetry import disable_telemetry

# Before Dagster or MLflow do anything in this process: both phone home by default, and no
# data may leave Europe. (dagster_home/dagster.yaml switches Dagster's off for the instance.)
disable_telemetry()

from dagster_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
