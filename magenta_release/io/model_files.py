"""Model files of a registered version: download, check the SHA-256 manifest recorded at
proposal (and in the audit log), refuse pickle, then load from the very files that were checked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from magenta_release.core import integrity, keys
from magenta_release.core.contract import as_category
from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.io import environments
from magenta_release.io.store import Registry, VersionInfo

if TYPE_CHECKING:  # pandas is imported where rows are (`runs` and `status` need none)
    import pandas as pd


def recorded_manifest(version: VersionInfo, proposed_sha256: str | None) -> dict[str, str]:
    """The manifest recorded at proposal, cross-checked against the hash the version's first
    propose event recorded in the audit log (`proposed_sha256`; later events cannot change it)."""
    raw = version.tags.get(keys.MANIFEST)
    if not raw:
        raise IntegrityViolation(
            f"version {version.version} has no recorded SHA-256 manifest; "
            "it was not proposed with magenta-release — re-propose its run"
        )
    try:
        files: dict[str, str] = json.loads(raw)
        digest = integrity.manifest_digest(files)
    except (TypeError, ValueError, AttributeError):
        files, digest = {}, ""
    if not digest or digest != version.tags.get(keys.MANIFEST_SHA256):
        raise IntegrityViolation(
            f"version {version.version}: its manifest tag was edited "
            "(hash mismatch); run `magenta-release audit verify`"
        )
    if proposed_sha256 is not None and proposed_sha256 != digest:
        raise IntegrityViolation(
            f"version {version.version}: manifest differs from the one in "
            "the audit log; the version's tags were tampered with"
        )
    return files


@dataclass(frozen=True)
class Verified:
    """A downloaded version whose files matched the manifest and whose format is skops."""

    label: str  # "version 3" or "run abc..." for messages
    folder: Path
    mlmodel: dict[str, Any]
    # the library versions the model recorded against this environment's (io.environments)
    versions: environments.Versions | None = None

    @property
    def scored_here(self) -> bool:
        """False when a library the model needs differs from its recorded version: then it is
        scored in an environment built from its recorded requirements, never here."""
        return self.versions is None or not self.versions.differing

    def environment(self) -> dict[str, Any]:
        """The versions, and where the model is scored, for the evidence, `show` and the card."""
        found = self.versions.to_json() if self.versions is not None else {}
        where = "here"
        if self.versions is not None and not self.scored_here:
            where = f"in its recorded environment {self.versions.key()}"
        return {**found, "scored_in": where}

    @property
    def inputs(self) -> list[tuple[str, str]]:
        """(name, type) of the model's input signature."""
        raw = (self.mlmodel.get("signature") or {}).get("inputs") or "[]"
        return [(str(c["name"]), str(c["type"])) for c in json.loads(raw)]

    @cached_property
    def model(self) -> Any:
        """The loaded model (once)."""
        return self.load()

    @property
    def all_inputs(self) -> list[tuple[str, str]]:
        """The signature's inputs; for a model logged without one, the column names it was
        fitted on (`feature_names_in_`), typed "any": passed through as read."""
        if self.inputs:
            return self.inputs
        names = getattr(self.model, "feature_names_in_", None)
        return [(str(n), "any") for n in (names if names is not None else [])]

    def load(self) -> Any:
        """The sklearn pipeline, read with skops trusting only the types this project's
        pipeline needs: a model file naming any other type fails to load instead of running."""
        import skops.io

        from magenta_release.core.pipeline import SKOPS_TRUSTED_TYPES

        flavor = self.mlmodel["flavors"]["sklearn"]
        asked = set(flavor.get("skops_trusted_types") or [])
        if not asked <= set(SKOPS_TRUSTED_TYPES):
            raise IntegrityViolation(
                f"{self.label} asks skops to trust "
                f"{', '.join(sorted(asked - set(SKOPS_TRUSTED_TYPES)))}; refused"
            )
        path = self.folder / flavor["pickled_model"]
        if self.versions is not None and not self.scored_here:
            return environments.RecordedModel(path, list(SKOPS_TRUSTED_TYPES), self.versions)
        return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)


def inspect(folder: Path, label: str) -> Verified:
    """A local model folder that is skops and not pickle (its hashes are checked by the
    caller against whatever it was recorded with)."""
    mlmodel = integrity.check_not_pickle(folder, label)
    return Verified(label, folder, mlmodel, environments.versions(folder, mlmodel))


def fetch_verified(
    registry: Registry, version: VersionInfo, dst: Path, proposed_sha256: str | None
) -> Verified:
    """Download a version into `dst` and verify it against the manifest its proposal
    recorded (`proposed_sha256`: from the audit log) before anything is deserialised."""
    expected = recorded_manifest(version, proposed_sha256)
    folder = registry.download_version(version, dst)
    integrity.verify_manifest(folder, expected, f"version {version.version}")
    return inspect(folder, f"version {version.version}")


NUMERIC_KINDS = frozenset({"double", "float", "long", "integer", "boolean"})


def conform(frame: pd.DataFrame, inputs: list[tuple[str, str]]) -> pd.DataFrame:
    """Select and type the model's inputs; BadInput naming missing or mistyped columns.
    Numbers are checked as one float matrix (one pass over 100k rows, not one per column)."""
    import pandas as pd

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
        if kind in NUMERIC_KINDS or kind == "any":  # "any": a model without a signature
            continue
        selected[name] = as_category(selected[name])  # codes become text, as at training
    return selected


def score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Churn probability per row."""
    out = np.asarray(model.predict_proba(frame))
    return out[:, 1] if out.ndim == 2 else out
