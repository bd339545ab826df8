"""Which extra of the distribution brings which optional library, and the one-line error when
a command needs one that is not installed.

The base install (`pip install magenta-release`) is what a team's own code imports: logging a
governed run, loading and verifying the champion, the data contract. Everything else is an
extra (pyproject.toml), imported lazily where it is used, so the base install imports without
it; a use that needs it calls `require` first and gets `MissingExtra` (exit 2) naming what to
install instead of a traceback from deep inside."""

from __future__ import annotations

import importlib.util

from magenta_release.core.errors import ReleaseError

# import name -> (distribution, extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "typer": ("typer", "cli"),
    "rich": ("rich", "cli"),
    "matplotlib": ("matplotlib", "cli"),
    "xgboost": ("xgboost", "cli"),
    "dagster": ("dagster", "dagster"),
    "upath": ("universal-pathlib", "dagster"),
    "gcsfs": ("gcsfs", "gcp"),
    "google.auth": ("google-auth", "gcp"),
    "jwt": ("pyjwt", "gcp"),
    "psycopg": ("psycopg", "server"),
    "flask": ("flask", "server"),
    "uv": ("uv", ""),  # a base dependency: only a broken install lacks it
}


class MissingExtra(ReleaseError):
    """An optional library this use needs is not installed (bad input: the environment)."""

    exit_code = 2


def installed(module: str) -> bool:
    """True when `module` can be imported here (nothing is imported to find out)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken spec
        return False


def message(module: str, purpose: str) -> str:
    """`error:`-ready text: what needs what, and the install command that brings it."""
    dist, extra = EXTRAS.get(module, (module.split(".")[0], ""))
    how = f"pip install 'magenta-release[{extra}]'" if extra else f"pip install {dist}"
    if extra == "cli":
        how = "uv tool install 'magenta-release[cli]' (its own environment), or " + how
    return f"{purpose} needs {dist}, which is not installed; {how}"


def require(module: str, purpose: str) -> None:
    """Raise `MissingExtra` unless `module` is importable: call before a lazy import."""
    if not installed(module):
        raise MissingExtra(message(module, purpose))


def missing_from(exc: ModuleNotFoundError) -> str | None:
    """The optional module a `ModuleNotFoundError` is about, or None for any other module."""
    name = exc.name or ""
    for module in EXTRAS:
        if name == module or name.startswith(module + ".") or module.startswith(name + "."):
            return module
    return None
