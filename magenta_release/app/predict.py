"""`predict`: score a file with a verified model version and record which version scored it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
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

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "model_version": self.model_version, "output": self.output}


def predict_frame(ctx: Context, frame: pd.DataFrame, model: str = "champion") -> pd.DataFrame:
    """Score an in-memory frame: identifiers passed through, churn score, model name and
    version."""
    version = models.resolve(ctx, model)
    with tempfile.TemporaryDirectory(prefix="magenta-predict-") as tmp:
        verified = models.fetch(ctx, version, Path(tmp))
        return scoring.score_frame(
            ctx.policy.data.all_identifiers,
            ctx.model,
            verified.model,
            verified.all_inputs,
            frame,
            version.version,
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
    local_file = source.is_local and "://" not in source.location and source.kind != "duckdb"
    if local_file and output_path.resolve() == Path(source.location).resolve():
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
        rows = scoring.stream_batches(
            identifiers,
            ctx.model,
            verified.model,
            inputs,
            sources.batches(source, columns, text),
            version,
            output_path,
        )
    return Prediction(rows, version.version, str(output_path))
