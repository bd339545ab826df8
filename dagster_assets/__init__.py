"""Dagster code location for magenta-release: `dagster dev -m dagster_assets`."""

from dagster_assets.definitions import defs

__all__ = ["defs"]
