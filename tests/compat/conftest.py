"""The compatibility job (`make test-compat`, run by .ci/run after `make test`): the built
wheel in fresh environments. Collected only when MAGENTA_RELEASE_COMPAT=1 (the make target
sets it), so `make test` stays the fast suite."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
UV = Path(sys.executable).parent / "uv"  # the pinned uv that `make setup` installs

if os.environ.get("MAGENTA_RELEASE_COMPAT") != "1":
    collect_ignore_glob = ["test_*.py"]


def uv(*args: str, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    """Run uv; its stdout and stderr together (uv reports plans on stderr)."""
    done = subprocess.run(
        [str(UV), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"uv {' '.join(args)} failed:\n{out[-4000:]}"
    return out


def project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution as `uv build --wheel` makes it from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    uv("build", "--wheel", "--out-dir", str(out), "-q", str(ROOT))
    (found,) = out.glob("magenta_release-*.whl")
    return found


def requirement(wheel: Path, extras: str) -> str:
    """`magenta-release[extras] @ file:///...whl`: the local wheel, by name, with extras."""
    return f"magenta-release[{extras}] @ {wheel.as_uri()}"
