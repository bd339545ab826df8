"""The team's resources: where its MLflow store is, where its evaluation rows go, how much
synthetic data to make. Values come from `dg.EnvVar` when a run starts, never at import."""

from pathlib import Path

import dagster as dg


class TeamMlflow(dg.ConfigurableResource):  # type: ignore[misc]
    """The MLflow store the team logs to: the same one the release tool reads."""

    tracking_uri: str
    experiment: str = "churn"


class EvaluationFiles(dg.ConfigurableResource):  # type: ignore[misc]
    """Where evaluation rows are kept, one parquet file per run, never overwritten: the release
    gates re-read them and check MLflow's digest. They hold customer identifiers, so they live
    in the team's storage, outside the MLflow store."""

    base_dir: str

    def path_for(self, run_id: str) -> str:
        """The file for one run's rows (an absolute path: MLflow records it as the source)."""
        folder = Path(self.base_dir).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{run_id}.parquet")


class TeamData(dg.ConfigurableResource):  # type: ignore[misc]
    """The synthetic accounts the example trains on (the team's warehouse in real life)."""

    seed: int = 11
    rows: int = 5_000
