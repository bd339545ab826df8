"""A team's own churn pipeline, released with magenta-release (docs/bring-your-own-training.md).

The team keeps its Dagster code location and its own steps (get_data -> features/label ->
df_input -> split -> trained_model -> predictions) on the table its dbt project builds; what
adoption changed is small enough to read in one diff against the code before
(tests/team_pipeline_before/, measured by tests/test_team_adoption.py): the split is the
policy's, the model is logged with `magenta_release.sdk.log_governed_run` instead of pickled
into git, predictions come from the verified `@champion`, and two sensors propose new runs
and refresh predictions when the champion moves. It imports only the installed integration
(`magenta_release.sdk`, `magenta_release.dagster`). Start it with
`dagster dev -m examples.team_pipeline.definitions` with TEAM_WAREHOUSE (the dbt DuckDB file:
`python -c 'from pathlib import Path; from examples.team_pipeline.warehouse import build;
build(Path("warehouse.duckdb"))'` makes one), TEAM_EVALUATION (a folder for evaluation rows),
TEAM_DAGSTER_DATA (asset files), MAGENTA_RELEASE_HOME or MLFLOW_TRACKING_URI (the release store,
initialised with `MAGENTA_RELEASE_POLICY=examples/team_pipeline/release-policy.toml
magenta-release init`)."""
