"""Fetching a registered version for use: download, check the SHA-256 manifest recorded at
proposal (and in the audit log), refuse pickle, then load from the very files that were checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magenta_release import audit, integrity
from magenta_release.errors import IntegrityViolation
from magenta_release.store import Store, VersionInfo


def recorded_manifest(store: Store, version: VersionInfo) -> dict[str, str]:
    """The manifest recorded at proposal, cross-checked against the audit log's hash."""
    raw = version.tags.get("release.manifest")
    if not raw:
        raise IntegrityViolation(
            f"version {version.version} has no recorded SHA-256 manifest; "
            "it was not proposed with magenta-release — re-propose its run"
        )
    files: dict[str, str] = json.loads(raw)
    digest = integrity.manifest_digest(files)
    if digest != version.tags.get("release.manifest_sha256"):
        raise IntegrityViolation(
            f"version {version.version}: its manifest tag was edited "
            "(hash mismatch); run `magenta-release audit verify`"
        )
    proposed = [
        e for e in audit.events(store) if e.action == "propose" and e.version == version.version
    ]
    if proposed and proposed[-1].manifest_sha256 != digest:
        raise IntegrityViolation(
            f"version {version.version}: manifest differs from the one in "
            "the audit log; the version's tags were tampered with"
        )
    return files


def fetch_verified(store: Store, version: VersionInfo, dst: Path) -> Path:
    """Download a version into `dst` and verify it; returns the local model folder."""
    expected = recorded_manifest(store, version)
    folder = store.download_version(version, dst)
    integrity.verify_manifest(folder, expected, f"version {version.version}")
    integrity.check_not_pickle(folder, f"version {version.version}")
    return folder


def load(folder: Path) -> Any:
    """Load a verified folder with MLflow's pyfunc loader (skops, trusted types only)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(folder))


def input_columns(folder: Path) -> list[tuple[str, str]]:
    """(name, type) of the model's input signature."""
    import yaml

    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    inputs = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
    return [(str(c["name"]), str(c["type"])) for c in inputs]


def score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Churn probability per row."""
    out = np.asarray(model.predict(frame))
    return out[:, 1] if out.ndim == 2 else out
