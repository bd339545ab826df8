"""Resources: the release store settings, where the customer tables are, and a pickle-free
IO manager. Configuration comes from `dg.EnvVar` at run time; nothing reads the environment at
import time and nothing writes credentials into it. The store and the IO manager are the
installed integration's (`magenta_release.dagster`), the same ones a team's code location
uses."""

from __future__ import annotations

import dagster as dg

from magenta_release.dagster import FrameFiles, FrameIOManager, ReleaseStore

# The names this code location has always used: parquet (index kept) and JSON, never pickle.
ParquetJsonFiles = FrameFiles
ParquetJsonIOManager = FrameIOManager

__all__ = ["CustomerTables", "ParquetJsonFiles", "ParquetJsonIOManager", "ReleaseStore"]


class CustomerTables(dg.ConfigurableResource):
    """Where the customer tables are. In production `features_uri` / `customers_uri` name the
    team's tables (GCS parquet such as gs://bucket/features/, or a DuckDB file); locally they
    are left empty and the generator fills a DuckDB database at `database`, as the demo does."""

    features_uri: str | None = None
    customers_uri: str | None = None
    database: str = "dagster_home/analytics.duckdb"
    seed: int = 42
    rows: int = 100_000
    scoring_seed: int = 2024
    scoring_rows: int = 100_000
    # Champion health: the newest labelled rows. Production names the team's labelled export;
    # locally the generator fills `labelled_customers`, `health_drift` > 0 making it a drifted
    # later population (magenta_release.core.synthetic's drift knob).
    labelled_uri: str | None = None
    health_seed: int = 2025
    health_rows: int = 20_000
    health_drift: float = 0.0
