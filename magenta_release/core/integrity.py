"""SHA-256 manifests of model folders and the pickle check: what is served is what was approved."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from magenta_release.core.errors import IntegrityViolation

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".pt", ".pth")


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file below `folder`, sorted."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def manifest_digest(files: dict[str, str]) -> str:
    return sha256_text(json.dumps(files, sort_keys=True, separators=(",", ":")))


def verify_manifest(folder: Path, expected: dict[str, str], what: str) -> None:
    """Raise IntegrityViolation naming the first file that differs from the manifest."""
    actual = manifest(folder)
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            raise IntegrityViolation(
                f"{what}: file {path} is missing from the stored model; "
                "the artifacts were changed after proposal — re-propose"
            )
        if path not in expected:
            raise IntegrityViolation(
                f"{what}: file {path} was added to the stored model after "
                "proposal; do not serve it — re-propose from a clean run"
            )
        if actual[path] != expected[path]:
            raise IntegrityViolation(
                f"{what}: SHA-256 of {path} does not match the manifest "
                "recorded at proposal; the artifact was tampered with"
            )


def check_not_pickle(folder: Path, what: str) -> dict[str, Any]:
    """Refuse a model stored as pickle/cloudpickle; return its MLmodel as a dict."""
    import yaml

    mlmodel_path = folder / "MLmodel"
    if not mlmodel_path.exists():
        raise IntegrityViolation(f"{what}: no MLmodel file; this is not an MLflow model")
    try:
        mlmodel: dict[str, Any] = yaml.safe_load(mlmodel_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise IntegrityViolation(f"{what}: MLmodel is not valid YAML") from exc
    flavors = mlmodel.get("flavors") or {}
    sk = flavors.get("sklearn") or {}
    fmt = sk.get("serialization_format")
    bad = [p.name for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if fmt != "skops" or bad or set(flavors) - {"sklearn", "python_function"}:
        found = fmt or ", ".join(sorted(flavors)) or "unknown"
        raise IntegrityViolation(
            f"{what}: model is stored as {found}{' with ' + ', '.join(bad) if bad else ''}, "
            "not skops; pickle can execute code when loaded — retrain with magenta-release "
            'train, or log it with mlflow.sklearn.log_model(..., serialization_format="skops") '
            "(see docs/bring-your-own-training.md)"
        )
    return mlmodel
