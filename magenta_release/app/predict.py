"""`predict`: score a file with a verified model version and record which version scored it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from magenta_release.app.context import Context
from magenta_release.app.services import models, scoring
from magenta_release.core.errors import BadInput
from magenta_release.io.model_files import NUMERIC_KINDS

SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class Prediction:
    rows: int
    model_version: int
    output: str
    # rows per categorical input holding a level the model never saw in training: scored,
    # but as the model treats an unknown level (usually as if the column were empty)
    unseen_levels: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "model_version": self.model_version,
            "output": self.output,
            "unseen_levels": self.unseen_levels,
        }


def predict_frame(ctx: Context, frame: pd.DataFrame, model: str = "champion") -> pd.DataFrame:
    """Score an in-memory frame: identifiers passed through, churn score, model name and
    version."""
    return load_model(ctx, model).score(frame, keep_index=False)


@dataclass(frozen=True)
class LoadedModel:
    """A served version, verified (SHA-256 against its proposal) and loaded once, for scoring
    frames in memory: a Dagster asset loads it once per run and scores its own DataFrame."""

    model_name: str
    version: int
    model: Any
    inputs: list[tuple[str, str]]
    identifiers: tuple[str, ...]
    levels: dict[str, frozenset[str]]

    def score(
        self, frame: pd.DataFrame, column: str = scoring.SCORE_COLUMN, *, keep_index: bool = True
    ) -> pd.DataFrame:
        """The frame's identifier columns, the score in `column`, the model's name and
        version; the frame's index is kept (a team's frames are indexed by customer)."""
        return scoring.score_frame(
            self.identifiers,
            self.model_name,
            self.model,
            self.inputs,
            frame,
            self.version,
            column=column,
            keep_index=keep_index,
        )

    def unseen_levels(self, frame: pd.DataFrame) -> dict[str, int]:
        """Rows per categorical input holding a level the model never saw in training."""
        return scoring.unseen_levels(frame, self.levels)


def load_model(ctx: Context, model: str = "champion") -> LoadedModel:
    """Resolve `model` (an alias or a version that passed its gates), check its files against
    the manifest its proposal recorded, and load it (skops, the project's trusted types)."""
    version = models.resolve(ctx, model)
    with tempfile.TemporaryDirectory(prefix="magenta-predict-") as tmp:
        verified = models.fetch(ctx, version, Path(tmp))
        loaded = verified.model  # read from the checked files before they are removed
        inputs = verified.all_inputs
    return LoadedModel(
        ctx.model,
        version.version,
        loaded,
        inputs,
        ctx.policy.data.all_identifiers,
        scoring.known_levels(loaded),
    )


def predict(
    ctx: Context, input_uri: str | Path, output_path: Path, model: str = "champion"
) -> Prediction:
    """Score a table (a path or source URI) into `output_path` with a verified version,
    streaming record batches: peak memory is one batch, whatever the input size. The output
    has one row per input row, in input order, with the identifiers and the model version."""
    from magenta_release.io import sources

    sources.require_protocol(
        str(input_uri), ctx.policy.residency.allowed_source_protocols, "--input"
    )
    source = sources.parse(str(input_uri), "--input")
    if output_path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"--output {output_path} must end in .parquet or .csv")
    local_file = sources.local_file(source)
    if local_file is not None and output_path.resolve() == Path(local_file).resolve():
        raise BadInput("--output must differ from --input; the input is never overwritten")
    if not output_path.parent.is_dir():
        raise BadInput(f"--output {output_path}: folder {output_path.parent} does not exist")
    version = models.resolve(ctx, model)
    identifiers = ctx.policy.data.all_identifiers
    with tempfile.TemporaryDirectory(prefix="magenta-predict-") as tmp:
        verified = models.fetch(ctx, version, Path(tmp))
        inputs = verified.all_inputs
        columns = scoring.input_columns(identifiers, source, inputs)
        text = identifiers + tuple(n for n, kind in inputs if kind not in NUMERIC_KINDS)
        unseen: dict[str, int] = {}
        rows = scoring.stream_batches(
            identifiers,
            ctx.model,
            verified.model,
            inputs,
            sources.batches(source, columns, text),
            version,
            output_path,
            unseen,
        )
    return Prediction(rows, version.version, str(output_path), unseen)
