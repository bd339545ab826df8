"""Resources: the release store settings, where the customer tables are, and a pickle-free
IO manager. Configuration comes from `dg.EnvVar` at run time; nothing reads the environment at
import time and nothing writes credentials into it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath

from magenta_release.app.context import Context
from magenta_release.core.settings import Settings, disable_telemetry


class ReleaseStore(dg.ConfigurableResource):
    """Where the MLflow store is and who the pipeline acts as: the same fields as the CLI's
    settings. In server mode the MLflow client reads its credentials
    (MLFLOW_TRACKING_USERNAME/PASSWORD, or the IAP header provider) from the run's own
    environment; the resource never copies secrets anywhere."""

    tracking_uri: str | None = None  # empty: MLFLOW_TRACKING_URI, else the local store
    home: str = "mlruns"
    model: str | None = None  # empty: the only model the store governs
    identity: str = "dagster"

    def settings(self) -> Settings:
        return Settings(
            home=Path(self.home),
            tracking_uri=self.tracking_uri or None,
            model=self.model or None,
            user=self.identity,
        )

    def open(self) -> Context:
        """A context for one asset's work on the governed model, acting as `identity` (the
        store must exist: `magenta-release init`, once)."""
        disable_telemetry()
        return Context.open(self.settings())

    def ui_url(self, run_id: str, experiment_id: str) -> str | None:
        uri = self.tracking_uri or ""
        if uri.startswith("http"):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return None


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


class ParquetJsonFiles(dg.UPathIOManager):
    """DataFrames as parquet, small values as JSON, under a base path (local or any fsspec
    URL, through Dagster's UPathIOManager). Dagster's default IO manager pickles; nothing on
    the release path may be a pickle."""

    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            with path.with_suffix(".parquet").open("wb") as fh:
                obj.to_parquet(fh, index=False)
        else:
            path.write_text(json.dumps(obj, default=str))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        parquet = path.with_suffix(".parquet")
        if parquet.exists():
            with parquet.open("rb") as fh:
                return pd.read_parquet(fh)
        return json.loads(path.read_text())


class ParquetJsonIOManager(dg.ConfigurableIOManagerFactory):
    """`ParquetJsonFiles` under `base_dir` (configurable, e.g. from `dg.EnvVar`). These files
    hold customer identifiers: they live outside the MLflow store."""

    base_dir: str

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetJsonFiles:
        return ParquetJsonFiles(base_path=UPath(self.base_dir))
