"""`predict`: score a file with a verified model version and record which version scored it."""

from __future__ import annotations

import math
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magenta_release import serving
from magenta_release.data import IDENTIFIERS
from magenta_release.errors import BadInput, PolicyRefused
from magenta_release.store import Store, VersionInfo

SUFFIXES = (".parquet", ".csv")
SERVABLE = {"approved", "retired", "rolled_back"}  # passed the gates and was approved once


@dataclass(frozen=True)
class Prediction:
    rows: int
    model_version: int
    output: str
    frame: pd.DataFrame

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "model_version": self.model_version, "output": self.output}


def resolve(store: Store, model: str) -> VersionInfo:
    """`champion` (or another alias) or a version number that passed its gates."""
    if model.isdigit():
        v = store.version(model)
        if v.tags.get("release.passed_gates") != "true" or v.status not in SERVABLE:
            raise PolicyRefused(
                f"version {v.version} is {v.status or 'not proposed'}; only "
                "versions that were approved once can be served"
            )
        return v
    alias = model.lstrip("@")
    if alias not in {"champion", "challenger", "previous"}:
        raise BadInput(
            f"--model {model!r} is neither champion/challenger/previous nor a version number"
        )
    found = store.alias(alias)
    if found is None:
        raise PolicyRefused(
            f"there is no @{alias} yet; approve a version first (see: magenta-release status)"
        )
    return found


def read_table(path: Path) -> pd.DataFrame:
    """Read parquet or CSV; BadInput with the reason on anything unreadable."""
    if path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"--input {path} must end in .parquet or .csv")
    if not path.is_file():
        raise BadInput(f"--input {path} does not exist or is not a file")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, encoding="utf-8", dtype={"customer_id": str})
    except UnicodeDecodeError as exc:
        raise BadInput(f"--input {path} is not UTF-8 text; save it as UTF-8 CSV") from exc
    except Exception as exc:  # pyarrow/pandas parser errors have no common base class
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BadInput(f"--input {path} cannot be read ({first})") from exc
    if path.suffix.lower() == ".csv":
        _check_csv_header(path)
    if frame.columns.duplicated().any():
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise BadInput(f"--input {path} has duplicate columns: {', '.join(dupes)}")
    if frame.empty:
        raise BadInput(f"--input {path} has no rows")
    return frame


def _check_csv_header(path: Path) -> None:
    """pandas renames duplicate CSV headers (`age`, `age.1`); refuse them instead."""
    import csv

    with path.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise BadInput(f"--input {path} has duplicate columns: {', '.join(dupes)}")


NUMERIC_KINDS = frozenset({"double", "float", "long", "integer", "boolean"})


def conform(frame: pd.DataFrame, inputs: list[tuple[str, str]]) -> pd.DataFrame:
    """Select and type the model's inputs; BadInput naming missing or mistyped columns.
    Numbers are checked as one float matrix (one pass over 100k rows, not one per column)."""
    missing = [n for n, _ in inputs if n not in frame.columns]
    if missing:
        raise BadInput(f"input is missing model columns: {', '.join(missing)}")
    numeric = [n for n, kind in inputs if kind in NUMERIC_KINDS]
    for name in numeric:
        col = frame[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise BadInput(f"input column {name} must be numeric, found {col.dtype}")
    selected = frame.loc[:, [n for n, _ in inputs]]
    if any(selected[n].dtype != np.float64 for n in numeric):
        selected = selected.astype(dict.fromkeys(numeric, "float64"))
    matrix = selected[numeric].to_numpy()
    with np.errstate(invalid="ignore"):
        bad_inf = np.isinf(matrix).any(axis=0)
        bad_big = (np.abs(matrix) > 1e12).any(axis=0) & ~bad_inf
    if bad_inf.any():
        raise BadInput(f"input column {numeric[int(bad_inf.argmax())]} contains infinite values")
    if bad_big.any():
        raise BadInput(
            f"input column {numeric[int(bad_big.argmax())]} has values beyond 1e12; check the units"
        )
    for name, kind in inputs:
        if kind in NUMERIC_KINDS:
            continue
        col = selected[name]
        if pd.api.types.is_numeric_dtype(col) and not col.isna().all():
            raise BadInput(f"input column {name} must be text, found {col.dtype}")
        selected[name] = col.astype(object).where(col.notna(), None)
    return selected


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (temp file + rename) so a failure never leaves half a file."""
    if path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"--output {path} must end in .parquet or .csv")
    if not path.parent.is_dir():
        raise BadInput(f"--output {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"--output {path} cannot be written ({exc.strerror})") from exc


def predict_frame(store: Store, frame: pd.DataFrame, model: str = "champion") -> pd.DataFrame:
    """Score a frame: identifiers passed through, churn score, model name and version."""
    version = resolve(store, model)
    with tempfile.TemporaryDirectory(prefix="magenta-predict-") as tmp:
        verified = serving.fetch_verified(store, version, Path(tmp))
        x = conform(frame, verified.inputs)  # our schema check replaces pyfunc's
        scores = serving.score(verified.load(), x)
    out = frame.loc[:, [c for c in IDENTIFIERS if c in frame.columns]].copy()
    out["churn_score"] = scores
    out["model_name"] = store.name
    out["model_version"] = version.version
    return out.reset_index(drop=True)


def predict(
    store: Store, input_path: Path, output_path: Path, model: str = "champion"
) -> Prediction:
    """Score `input_path` into `output_path` with a verified version."""
    if output_path.resolve() == input_path.resolve():
        raise BadInput("--output must differ from --input; the input is never overwritten")
    if output_path.suffix.lower() not in SUFFIXES:
        raise BadInput(f"--output {output_path} must end in .parquet or .csv")
    frame = read_table(input_path)
    out = predict_frame(store, frame, model)
    if not all(math.isfinite(s) for s in out["churn_score"]):
        raise BadInput("the model produced non-finite scores; check the input values")
    write_table(out, output_path)
    return Prediction(len(out), int(out["model_version"].iloc[0]), str(output_path), out)
