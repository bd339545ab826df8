"""Who is calling: the MLflow `authorization_function` and the `mlflow.app` factory.

Why an `mlflow.app` entry point of our own (`magenta-release-auth`) that wraps the basic-auth app,
rather than only an `authorization_function`: MLflow's auth module lets the function decide *who*
the caller is, and nothing else. Its per-endpoint validators decide *what* a user may do from
READ/EDIT/MANAGE grants, and setting an alias needs only EDIT; admins skip the validators
entirely (`mlflow.server.auth._before_request`). No grant can say "only the release authority
writes this". So the factory builds MLflow's own basic-auth app unchanged (users, grants, the
UI, the FastAPI middleware), adds the release authority's endpoints (`authority`), and the
guard's hooks, which run for every user, admins included: the request-shape rule first of all
(`requests`), the governed-state rule after authentication (`guard.check`, matching Flask
endpoints, so `/api/` and `/ajax-api/` alike), and an ASGI middleware for MLflow's native
FastAPI artifact upload.

Identity, chosen by `MAGENTA_RELEASE_AUTH`:
- `iap` (production): the e-mail in IAP's signed header `x-goog-iap-jwt-assertion` (ES256;
  signature, audience `MAGENTA_RELEASE_IAP_HEADER_AUDIENCE`, issuer, expiry checked; keys from
  `MAGENTA_RELEASE_IAP_JWKS_URL`, cached). Basic-auth credentials are ignored. A person IAP lets
  through but MLflow's user table does not know yet is created on first sight with a random,
  never-disclosed password (MLflow's validators and after-request hooks look every user up in
  that table), so their rights are the ini's `default_permission` until an admin grants more.
  E-mails in `MAGENTA_RELEASE_IAP_ADMINS` are created as MLflow admins.
- `basic` (local server mode, tests): MLflow's own basic-auth check.

Any missing, forged, expired or wrong-audience assertion is HTTP 401 with error code
UNAUTHENTICATED, which the CLI reports with exit 4."""

from __future__ import annotations

import functools
import json
import os
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask, Response
    from jwt import PyJWKClient
    from werkzeug.datastructures import Authorization

IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
GOOGLE_IAP_JWKS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
HEADER_AUDIENCE_ENV = "MAGENTA_RELEASE_IAP_HEADER_AUDIENCE"  # the signed header's `aud`
# IAP prefixes identities with their namespace, e.g. `accounts.google.com:alice@example.com`.
IDENTITY_PREFIX = "accounts.google.com:"
JWKS_CACHE_SECONDS = 3600


class IapTokenError(Exception):
    """The IAP assertion is missing or does not verify; the text says which."""


def auth_mode() -> str:
    mode = os.environ.get("MAGENTA_RELEASE_AUTH", "iap").strip().lower()
    if mode not in {"iap", "basic"}:
        raise ValueError(f"MAGENTA_RELEASE_AUTH={mode!r}; use `iap` or `basic`")
    return mode


@functools.lru_cache(maxsize=4)
def _jwks_client(url: str) -> PyJWKClient:
    """One key client per URL for the process: PyJWKClient caches the key set and refetches
    when an unknown key id shows up (IAP rotates its keys)."""
    from jwt import PyJWKClient

    return PyJWKClient(url, cache_keys=True, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS)


def verify_iap_assertion(token: str | None, *, audience: str, jwks_url: str) -> str:
    """The e-mail IAP vouches for in `token`, or IapTokenError saying why not."""
    import jwt

    if not token:
        raise IapTokenError(f"no {IAP_HEADER} header: reach this server through IAP")
    try:
        key = _jwks_client(jwks_url).get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=audience,
            issuer=IAP_ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "email"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        raise IapTokenError("the IAP assertion has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise IapTokenError("the IAP assertion is for another audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise IapTokenError("the IAP assertion was not issued by IAP") from exc
    except jwt.PyJWKClientConnectionError as exc:
        raise IapTokenError("the IAP signing keys cannot be fetched") from exc
    except jwt.PyJWTError as exc:
        raise IapTokenError(f"the IAP assertion does not verify ({type(exc).__name__})") from exc
    email = str(claims["email"]).removeprefix(IDENTITY_PREFIX).strip()
    if not email:
        raise IapTokenError("the IAP assertion names no e-mail")
    return email


def _unauthenticated(why: str) -> Response:
    from flask import make_response

    res = make_response(
        json.dumps({"error_code": "UNAUTHENTICATED", "message": f"not authenticated: {why}"})
    )
    res.status_code = 401
    res.mimetype = "application/json"
    return res


def _ensure_user(email: str) -> None:
    """Create an MLflow user for a person IAP let through, on first sight."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth import store

    if store.has_user(email):
        return
    admins = {
        a.strip() for a in os.environ.get("MAGENTA_RELEASE_IAP_ADMINS", "").split(",") if a.strip()
    }
    try:
        store.create_user(email, secrets.token_urlsafe(32), is_admin=email in admins)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another request created it meanwhile
            raise


def check_iap_settings() -> None:
    """IAP mode needs the signed header's audience; the client's variable is not it."""
    if os.environ.get(HEADER_AUDIENCE_ENV):
        return
    if os.environ.get("MAGENTA_RELEASE_IAP_AUDIENCE"):
        raise ValueError(
            "MAGENTA_RELEASE_IAP_AUDIENCE is no longer read: the server sets "
            f"{HEADER_AUDIENCE_ENV} (the signed header's audience, "
            "/projects/NUMBER/locations/REGION/services/SERVICE); clients set "
            "MAGENTA_RELEASE_IAP_CLIENT_ID"
        )
    raise ValueError(
        f"MAGENTA_RELEASE_AUTH=iap needs {HEADER_AUDIENCE_ENV} (the IAP signed header's "
        "audience, /projects/NUMBER/locations/REGION/services/SERVICE for IAP on Cloud Run)"
    )


def authenticate() -> Authorization | Response:
    """MLflow `authorization_function`: the authenticated user of the current Flask request."""
    from flask import request
    from mlflow.server.auth import authenticate_request_basic_auth
    from werkzeug.datastructures import Authorization

    if auth_mode() == "basic":
        result: Authorization | Response = authenticate_request_basic_auth()
        return result
    try:
        email = verify_iap_assertion(
            request.headers.get(IAP_HEADER),
            audience=os.environ[HEADER_AUDIENCE_ENV],
            jwks_url=os.environ.get("MAGENTA_RELEASE_IAP_JWKS_URL", GOOGLE_IAP_JWKS_URL),
        )
    except IapTokenError as exc:
        return _unauthenticated(str(exc))
    _ensure_user(email)
    return Authorization("basic", {"username": email})


def create_app(app: Flask | None = None) -> Any:
    """`mlflow.app` factory: MLflow's basic-auth app, the release authority's endpoints and
    the guard that keeps every other writer off governed state."""
    from mlflow.server import app as mlflow_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    from magenta_release.server import authority, guard

    flask_app = app if app is not None else mlflow_app
    if auth_mode() == "iap":
        check_iap_settings()
    authority.register(flask_app)
    served = create_basic_auth_app(flask_app)
    # First of all hooks: a request MLflow's readers would read differently is refused before
    # anything reads it. After MLflow's authentication: any write of governed state, whoever
    # sends it (the rules of a model come from its own audit log, never a file on the server).
    flask_app.before_request_funcs.setdefault(None, []).insert(0, guard.check_shape)
    flask_app.before_request(guard.check)
    if served is not flask_app:  # uvicorn: MLflow's FastAPI app with its native artifact routes
        served.add_middleware(guard.AsgiGuard)
    return served
