"""MLflow errors as `ReleaseError`s: `translate` turns every MLflow and connection error into
one that says what failed; `or_none` and `_done` name the two answers that are not errors here
(a missing resource, and a refusal the caller expects)."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from magenta_release.core.errors import BadInput, PolicyRefused, ReleaseError, StoreUnreachable

MISSING, EXISTS = "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
T = TypeVar("T")


def error_code(exc: BaseException) -> str | None:
    """The MLflow error code of `exc`, None if it is no MLflow error. MLflow is not imported
    for it: an exception of MLflow's exists only once MLflow is (the embedded store's reads
    raise `NotFound`, with MLflow's code, without it)."""
    mlflow_errors = sys.modules.get("mlflow.exceptions")
    known: tuple[type, ...] = (NotFound,)
    if mlflow_errors is not None:
        known += (mlflow_errors.MlflowException,)
    if isinstance(exc, known):
        return str(getattr(exc, "error_code", ""))
    return None


class NotFound(LookupError):
    """The resource does not exist: MLflow's RESOURCE_DOES_NOT_EXIST, raised by the embedded
    store's reads without importing MLflow."""

    error_code = MISSING

    @property
    def message(self) -> str:
        return str(self)


def or_none(call: Callable[[], T]) -> T | None:
    """`call()`, or None when MLflow answers that the resource does not exist (the one
    answer that is not an error here; `translate` turns every other one)."""
    try:
        return call()
    except Exception as exc:
        if error_code(exc) == MISSING:
            return None
        raise


def _done(call: Callable[[], object], *refusals: str) -> bool:
    """True if `call()` succeeded; False when MLflow refused it with one of `refusals`."""
    try:
        call()
    except Exception as exc:
        if error_code(exc) in refusals:
            return False
        raise
    return True


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn MLflow and connection errors into ReleaseErrors that say what failed."""
    try:
        yield
    except ReleaseError:
        raise
    except Exception as exc:
        code = error_code(exc)
        if code is None:
            _translate_other(what, exc)
            raise
        message = getattr(exc, "message", None) or str(exc)
        text = str(message).splitlines()[0][:300] if message else code
        if code == MISSING:
            raise BadInput(f"{what}: not found ({text})") from exc
        raise _translate_code(what, code, text) from exc


def _translate_other(what: str, exc: Exception) -> None:
    """Connection errors (OS, SQLite, SQLAlchemy, HTTP) as StoreUnreachable."""
    if isinstance(exc, OSError | sqlite3.Error):
        raise StoreUnreachable(f"{what}: the store cannot be used ({exc})") from exc
    # SQLAlchemy and requests errors surface here; they mean the store is not usable.
    if type(exc).__module__.split(".")[0] in {"sqlalchemy", "requests", "urllib3"}:
        raise StoreUnreachable(
            f"{what}: the store cannot be reached ({type(exc).__name__}); check "
            "--tracking-uri / MLFLOW_TRACKING_URI"
        ) from exc


def _translate_code(what: str, code: str, text: str) -> ReleaseError:
    """The ReleaseError for an MLflow error code (the caller chains the original)."""
    if code == "UNAUTHENTICATED":
        return StoreUnreachable(
            f"{what}: the MLflow server refused the credentials; set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if code == "PERMISSION_DENIED":
        return PolicyRefused(
            f"{what}: the MLflow server refused it ({text}); if this is a permission, ask an "
            "admin to grant it on the registered model"
        )
    if code in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"}:
        return BadInput(f"{what}: {text}")
    if "API request to" in text and ("Connection" in text or "Max retries" in text):
        return StoreUnreachable(
            f"{what}: the MLflow server cannot be reached; check that it runs and that "
            "MLFLOW_TRACKING_URI / --tracking-uri point at it"
        )
    return StoreUnreachable(f"{what}: the MLflow store failed ({text})")
