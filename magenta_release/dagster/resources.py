"""Resources: the release store, where evaluation files go, and the verified champion."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from magenta_release.app.context import Context
from magenta_release.core.settings import Settings, disable_telemetry

if TYPE_CHECKING:
    import pandas as pd

    from magenta_release.app.predict import LoadedModel


class ReleaseStore(dg.ConfigurableResource):
    """Where the MLflow store is and who the pipeline acts as: the same fields as the CLI's
    settings. In server mode the MLflow client reads its credentials
    (MLFLOW_TRACKING_USERNAME/PASSWORD, or the IAP header provider) from the run's own
    environment; the resource never copies secrets anywhere."""

    tracking_uri: str | None = None  # empty: MLFLOW_TRACKING_URI, else the local store
    home: str | None = None  # the local store's folder; empty: MAGENTA_RELEASE_HOME or mlruns
    model: str | None = None  # empty: the only model the store governs
    identity: str = "dagster"
    # where `magenta_release.sdk.log_governed_run(..., store=this)` writes each run's
    # evaluation rows and training keys (see EvaluationFiles); empty: pass evaluation_dir=
    evaluation_dir: str | None = None

    def settings(self) -> Settings:
        return Settings().with_overrides(
            home=Path(self.home) if self.home else None,
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


class EvaluationFiles(dg.ConfigurableResource):
    """Where each run's evaluation rows and training keys are written, one file each per run,
    never overwritten: the release gates re-read them. They hold customer identifiers, so they
    live in the team's storage (a folder, or any fsspec URL such as gs://bucket/evaluation/),
    never in the MLflow store."""

    base_dir: str

    def folder(self) -> str:
        """The base folder as `log_governed_run` wants it (a local path made absolute: MLflow
        records it as the rows' source)."""
        if "://" in self.base_dir:
            return self.base_dir.rstrip("/")
        return str(Path(self.base_dir).expanduser().resolve())


class ChampionModel(dg.ConfigurableResource):
    """The served model (`alias`, default `champion`) of the release store: resolved from the
    audit log, its files checked against the SHA-256 manifest recorded at proposal, loaded with
    skops; `score` writes its churn probability into `output_column` of a copy of the frame's
    identifiers (the frame's index is kept), with `model_name` and `model_version`."""

    store: ReleaseStore
    alias: str = "champion"
    output_column: str = "churn_score"

    def load(self) -> LoadedModel:
        """The verified model, loaded once: score many frames with `.score(frame)`."""
        from magenta_release.app.predict import load_model

        return load_model(self.store.open(), self.alias)

    def score(self, frame: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
        """Score `frame` (the model's input columns; identifiers passed through)."""
        return self.load().score(frame, column or self.output_column)

    def describe(self, loaded: LoadedModel, frame: pd.DataFrame) -> dict[str, Any]:
        """Metadata for the asset that scored `frame`: which version, and the rows per column
        holding a level the model never saw in training."""
        return {
            "model_name": loaded.model_name,
            "model_version": loaded.version,
            "rows": len(frame),
            "unseen_levels": loaded.unseen_levels(frame),
        }
