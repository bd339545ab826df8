"""A model's recorded environment: the library versions it was saved with, compared with the
ones installed here, and, where a library it needs differs, an environment built from its
recorded requirements to score it in (never silently in a mismatched one).

The way MLflow restores a model's environment for `mlflow models predict --env-manager uv`
("Managing Dependencies in MLflow Models", https://mlflow.org/docs/latest/ml/model/dependencies/):
the model folder's `requirements.txt` (and the sklearn flavor's `sklearn_version`) say what it
was trained with; uv builds a virtual environment with exactly those pins, kept under a
cache folder named by the SHA-256 of the pins and the Python version, so the second proposal
of a model from the same team environment reuses it. The model is loaded there with skops,
trusting only the types this tool trusts (`core.pipeline.SKOPS_TRUSTED_TYPES`), from the very
files whose SHA-256 manifest the caller checked; rows go in and scores come out as `.npz`/`.npy`
files of plain arrays (no pickle either way)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

from magenta_release.core.errors import BadInput
from magenta_release.core.extras import require

# What scoring a skops scikit-learn model depends on: a version that differs from the recorded
# one may load differently or not at all (scikit-learn supports loading only with the version
# that saved, https://scikit-learn.org/stable/model_persistence.html). MLflow itself is only the
# wrapper that logged the files: the tool loads them with skops, so it is not compared.
SCORING_LIBRARIES = ("scikit-learn", "xgboost", "skops", "numpy", "scipy", "pandas")
SAME_PACKAGE = {"xgboost-cpu": "xgboost"}  # two distributions of one import package
CACHE_ENV = "MAGENTA_RELEASE_ENV_CACHE"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*$")
# bump when the script or the layout of a cached environment changes
LAYOUT = "2"


def _canonical(name: str) -> str:
    name = re.sub(r"[-_.]+", "-", name).lower()
    return SAME_PACKAGE.get(name, name)


def _here(name: str) -> str | None:
    for dist in [name, *[d for d, same in SAME_PACKAGE.items() if same == name]]:
        try:
            return installed_version(dist)
        except PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class Versions:
    """What a model recorded, what is installed here, and the pins to rebuild its environment."""

    recorded: dict[str, str]  # canonical name -> recorded version (scoring libraries only)
    here: dict[str, str | None]  # canonical name -> version installed here (None: missing)
    pins: tuple[str, ...]  # the recorded `dist==version` lines for those libraries
    python: str | None = None  # the recorded Python version
    unpinned: tuple[str, ...] = ()  # scoring libraries the model names without a version

    @property
    def differing(self) -> dict[str, tuple[str, str | None]]:
        """{library: (recorded, here)} for every recorded library whose version differs."""
        return {n: (v, self.here.get(n)) for n, v in self.recorded.items() if self.here.get(n) != v}

    def key(self) -> str:
        """The cache key of the environment these pins build."""
        python = ".".join((self.python or "").split(".")[:2])
        text = "\n".join([LAYOUT, python, *sorted(self.pins)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "recorded": dict(sorted(self.recorded.items())),
            "here": dict(sorted(self.here.items())),
            "differing": sorted(self.differing),
            "python": self.python,
            "unpinned": list(self.unpinned),
        }


def versions(folder: Path, mlmodel: dict[str, Any]) -> Versions:
    """The scoring libraries' versions a model folder recorded (its `requirements.txt` pins;
    the sklearn flavor's `sklearn_version` when scikit-learn is not pinned) against this
    environment's."""
    recorded: dict[str, str] = {}
    pins: list[str] = []
    unpinned: list[str] = []
    req = folder / "requirements.txt"
    lines = req.read_text().splitlines() if req.is_file() else []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        found = PIN.match(line)
        name = _canonical(found[1] if found else re.split(r"[<>=!~;\[\s]", line, maxsplit=1)[0])
        if name not in SCORING_LIBRARIES:
            continue
        if found:
            recorded[name] = found[2]
            pins.append(f"{found[1]}=={found[2]}")
        else:
            unpinned.append(name)
    flavors = mlmodel.get("flavors") or {}
    sklearn = (flavors.get("sklearn") or {}).get("sklearn_version")
    if sklearn and "scikit-learn" not in recorded:
        recorded["scikit-learn"] = str(sklearn)
        pins.append(f"scikit-learn=={sklearn}")
        unpinned = [n for n in unpinned if n != "scikit-learn"]
    python = (flavors.get("python_function") or {}).get("python_version")
    return Versions(
        recorded,
        {n: _here(n) for n in recorded},
        tuple(pins),
        str(python) if python else None,
        tuple(unpinned),
    )


def cache_root() -> Path:
    """Where built environments are kept (MAGENTA_RELEASE_ENV_CACHE, else the user cache)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "magenta-release" / "environments"


def _uv() -> str:
    require("uv", "scoring a model in its recorded environment")
    from uv import find_uv_bin

    return str(find_uv_bin())


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BadInput(f"{what} failed ({last[0]}); the model cannot be scored as recorded")


def environment(v: Versions) -> Path:
    """The Python of an environment with `v`'s pins: built once with uv, then reused."""
    folder = cache_root() / v.key()
    python = folder / "bin" / "python"
    ready = folder / ".magenta-release-ready"
    if ready.is_file() and python.exists():
        return python
    uv = _uv()
    folder.parent.mkdir(parents=True, exist_ok=True)
    want = ".".join((v.python or "").split(".")[:2])
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    # The recorded minor Python when this machine has it (uv finds installed ones only),
    # else this interpreter: the libraries are what decide how a model scores.
    interpreter = want if want and want != have else sys.executable
    base = [uv, "venv", "-q", "--clear", "--no-python-downloads", str(folder)]
    try:
        _run([*base, "--python", interpreter], f"creating a Python {want} environment")
    except BadInput:
        _run([*base, "--python", sys.executable], "creating the scoring environment")
    _run(
        [uv, "pip", "install", "-q", "--python", str(python), *v.pins, *_unpinned(v)],
        f"installing the model's recorded requirements ({', '.join(v.pins)})",
    )
    ready.write_text(json.dumps({"pins": list(v.pins), "python": v.python}) + "\n")
    return python


def _unpinned(v: Versions) -> list[str]:
    """What loading and scoring need that the model did not pin (its versions: the resolver's)."""
    return [n for n in ("skops", "pandas", "numpy") if n not in v.recorded]


# Run with the environment's Python in isolated mode (-I: no current directory, no user site,
# no PYTHON* variables), so nothing of this package or checkout is importable there.
SCRIPT = """
import json, sys
import numpy as np
import pandas as pd
import skops.io
model_file, trusted, rows, out = sys.argv[1:5]
model = skops.io.load(model_file, trusted=json.loads(trusted))
if rows == "-":
    names = getattr(model, "feature_names_in_", None)
    with open(out, "w") as f:
        json.dump([str(n) for n in names] if names is not None else [], f)
else:
    data = np.load(rows, allow_pickle=False)
    columns = {}
    for i, name in enumerate(json.loads(str(data["names"]))):
        values = data[f"c{i}"]
        if values.dtype.kind == "U":  # text: Python strings, missing as NaN
            values = values.astype(object)
            values[data[f"m{i}"]] = np.nan
        columns[name] = values
    p = np.asarray(model.predict_proba(pd.DataFrame(columns)), dtype="float64")
    np.save(out, p, allow_pickle=False)
"""


def _arrays(frame: Any) -> dict[str, Any]:
    """The frame as plain numpy arrays (no pickle, no parquet library needed there): numbers
    and booleans as they are, anything else as text plus a missing-value mask."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {"names": np.array(json.dumps([str(c) for c in frame.columns]))}
    for i, name in enumerate(frame.columns):
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            out[f"c{i}"] = col.to_numpy(dtype="float64" if col.hasnans else None)
            continue
        missing = col.isna().to_numpy()
        out[f"c{i}"] = np.array(["" if m else str(v) for v, m in zip(col, missing, strict=True)])
        out[f"m{i}"] = missing
    return out


@dataclass
class RecordedModel:
    """A model scored in the environment built from its recorded requirements: `predict_proba`
    and `feature_names_in_` as on the model itself, each answered by that environment."""

    model_file: Path
    trusted: list[str]
    versions: Versions
    _names: list[str] | None = field(default=None, repr=False)

    def _call(self, rows: str, out: Path) -> None:
        python = environment(self.versions)
        cmd = [str(python), "-I", "-c", SCRIPT, str(self.model_file), json.dumps(self.trusted)]
        _run([*cmd, rows, str(out)], "scoring in the model's recorded environment")

    @property
    def feature_names_in_(self) -> list[str] | None:
        if self._names is None:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "names.json"
                self._call("-", out)
                self._names = [str(n) for n in json.loads(out.read_text())]
        return self._names or None

    def predict_proba(self, frame: Any) -> Any:
        import numpy as np

        with tempfile.TemporaryDirectory() as tmp:
            rows, out = Path(tmp) / "rows.npz", Path(tmp) / "scores.npy"
            np.savez(rows, **_arrays(frame))
            self._call(str(rows), out)
            return np.load(out, allow_pickle=False)
