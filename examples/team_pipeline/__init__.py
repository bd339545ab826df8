"""A team's own training pipeline, released with magenta-release (docs/bring-your-own-training.md).

The team keeps its Dagster code location (`features` and `label` assets, a training asset with
its own scikit-learn pipeline, plain MLflow logging); the release tool joins through one sensor
and one job that propose each new run. Start it with
`dagster dev -m examples.team_pipeline.definitions` (environment: see `definitions.py`)."""
