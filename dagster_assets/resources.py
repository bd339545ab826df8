"""Resources: the release store settings and a pickle-free IO manager."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from magenta_release.settings import Settings, disable_telemetry
from magenta_release.store import Store


class ReleaseStore(dg.ConfigurableResource):  # type: ignore[misc]
    """Where the MLflow store is and who the pipeline acts as. The same fields as the CLI's
    settings; credentials come from the environment (`dg.EnvVar`), never from run config."""

    tracking_uri: str | None = None
    home: str = "mlruns"
    policy: str | None = None
    identity: str = "dagster"
    mlflow_username: str | None = None
    mlflow_password: str | None = None

    def settings(self) -> Settings:
        return Settings(
            home=Path(self.home),
            tracking_uri=self.tracking_uri or None,
            policy=Path(self.policy) if self.policy else None,
            user=self.identity,
        )

    def open(self) -> Store:
        """Open the store (initialising the embedded one on first use)."""
        disable_telemetry()
        if self.mlflow_username:
            # MLflow's REST client reads credentials from the environment only.
            os.environ["MLFLOW_TRACKING_USERNAME"] = self.mlflow_username
            os.environ["MLFLOW_TRACKING_PASSWORD"] = self.mlflow_password or ""
        from magenta_release.init import init

        settings = self.settings()
        init(settings)
        return Store.open(settings)

    def ui_url(self, run_id: str, experiment_id: str) -> str | None:
        uri = self.tracking_uri or ""
        if uri.startswith("http"):
            return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return None


class DataSpec(dg.ConfigurableResource):  # type: ignore[misc]
    """Which synthetic data the pipeline uses: training population and current customers."""

    seed: int = 42
    rows: int = 100_000
    scoring_seed: int = 2024
    scoring_rows: int = 100_000


class ParquetJsonIOManager(dg.ConfigurableIOManager):  # type: ignore[misc]
    """DataFrames as parquet, small values as JSON, under `base_dir`. Dagster's default IO
    manager pickles; nothing on the release path may be a pickle."""

    base_dir: str

    def _path(self, context: dg.OutputContext | dg.InputContext, suffix: str) -> Path:
        return Path(self.base_dir).joinpath(*context.asset_key.path).with_suffix(suffix)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, pd.DataFrame):
            path = self._path(context, ".parquet")
            path.parent.mkdir(parents=True, exist_ok=True)
            obj.to_parquet(path, index=False)
        else:
            path = self._path(context, ".json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(obj, default=str))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        parquet = self._path(context, ".parquet")
        if parquet.exists():
            return pd.read_parquet(parquet)
        return json.loads(self._path(context, ".json").read_text())
