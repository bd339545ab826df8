"""An IO manager for a team's DataFrames without pickle: parquet files that keep the frame's
index (a frame indexed by customer id comes back indexed by customer id; the plain
`index=False` writer lost it, and the team's `pivoted_customer_interactions` failed with
KeyError: 'customer_id'), other values as JSON."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pandas as pd
from upath import UPath


class FrameFiles(dg.UPathIOManager):
    """DataFrames as parquet with their index, small values as JSON, under a base path
    (local or any fsspec URL, through Dagster's UPathIOManager)."""

    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            with path.with_suffix(".parquet").open("wb") as fh:
                obj.to_parquet(fh)  # index=None: a named or non-default index is stored
        else:
            path.write_text(json.dumps(obj, default=str))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        parquet = path.with_suffix(".parquet")
        if parquet.exists():
            with parquet.open("rb") as fh:
                return pd.read_parquet(fh)
        return json.loads(path.read_text())


class FrameIOManager(dg.ConfigurableIOManagerFactory):
    """`FrameFiles` under `base_dir` (e.g. from `dg.EnvVar`). These files hold customer
    identifiers: they live in the team's storage, outside the MLflow store."""

    base_dir: str

    def create_io_manager(self, context: dg.InitResourceContext) -> FrameFiles:
        return FrameFiles(base_path=UPath(self.base_dir))
