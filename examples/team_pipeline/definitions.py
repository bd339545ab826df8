"""The team's code location: their assets, a training and a scoring job, the warehouse."""

import dagster as dg

import magenta_release.dagster as mr
from examples.team_pipeline import assets
from examples.team_pipeline.resources import Warehouse

training_job = dg.define_asset_job(
    "training", selection=dg.AssetSelection.all() - dg.AssetSelection.assets("predictions")
)
scoring_job = dg.define_asset_job("scoring", selection=["get_data", "features", "predictions"])
propose_new_run, propose_job = mr.propose_on_new_run("trained_model")
release = mr.ReleaseStore(identity="team-pipeline", evaluation_dir=dg.EnvVar("TEAM_EVALUATION"))

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
    jobs=[training_job, scoring_job, propose_job],
    sensors=[propose_new_run, mr.champion_moved_sensor(scoring_job)],
    resources={
        "warehouse": Warehouse(database=dg.EnvVar("TEAM_WAREHOUSE")),
        "release": release,
        "champion": mr.ChampionModel(store=release, output_column="churn_risk"),
        "io_manager": mr.FrameIOManager(base_dir=dg.EnvVar("TEAM_DAGSTER_DATA")),
    },
)
