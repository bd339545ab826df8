"""The team's code location: their assets, a training and a scoring job, the warehouse."""

import dagster as dg

from tests.team_pipeline_before import assets
from tests.team_pipeline_before.resources import Warehouse

training_job = dg.define_asset_job(
    "training", selection=dg.AssetSelection.all() - dg.AssetSelection.assets("predictions")
)
scoring_job = dg.define_asset_job("scoring", selection=["get_data", "features", "predictions"])

defs = dg.Definitions(
    assets=[
        assets.get_data,
        assets.features,
        assets.label,
        assets.df_input,
        assets.split,
        assets.trained_model,
        assets.predictions,
    ],
    jobs=[training_job, scoring_job],
    resources={
        "warehouse": Warehouse(database=dg.EnvVar("TEAM_WAREHOUSE")),
        "io_manager": dg.FilesystemIOManager(base_dir=dg.EnvVar("TEAM_DAGSTER_DATA")),
    },
)
