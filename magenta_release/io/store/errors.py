"""MLflow errors as `ReleaseError`s: `translate` turns every MLflow and connection error into
one that says what failed; `or_none` and `_done` name the two answers that are not errors here
(a missing resource, and a refusal the caller expects)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import TypeVar

from magenta_release.core.errors import BadInput, PolicyRefused, ReleaseError, StoreUnreachable

MISSING, EXISTS = "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
T = TypeVar("T")


def or_none(call: Callable[[], T]) -> T | None:
    """`call()`, or None when MLflow answers that the resource does not exist (the one
    answer that is not an error here; `translate` turns every other one)."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if exc.error_code == MISSING:
            return None
        raise


def _done(call: Callable[[], object], *refusals: str) -> bool:
    """True if `call()` succeeded; False when MLflow refused it with one of `refusals`."""
    from mlflow.exceptions import MlflowException

    try:
        call()
    except MlflowException as exc:
        if exc.error_code in refusals:
            return False
        raise
    return True


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn MLflow and connection errors into ReleaseErrors that say what failed."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except ReleaseError:
        raise
    except MlflowException as exc:
        code = str(exc.error_code)
        text = str(exc.message).splitlines()[0][:300] if exc.message else code
        if code == MISSING:
            raise BadInput(f"{what}: not found ({text})") from exc
        raise _translate_code(what, code, text) from exc
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnreachable(f"{what}: the store cannot be used ({exc})") from exc
    except Exception as exc:
        # SQLAlchemy and requests errors surface here; they mean the store is not usable.
        if type(exc).__module__.split(".")[0] in {"sqlalchemy", "requests", "urllib3"}:
            raise StoreUnreachable(
                f"{what}: the store cannot be reached ({type(exc).__name__}); check "
                "--tracking-uri / MLFLOW_TRACKING_URI"
            ) from exc
        raise


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
