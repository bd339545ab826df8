"""Getting through Google IAP: an MLflow request-header provider (entry point group
`mlflow.request_header_provider`) that adds `Proxy-Authorization: Bearer <OIDC ID token>` to every
request the MLflow client sends when `MAGENTA_RELEASE_IAP_CLIENT_ID` is set.

Why `Proxy-Authorization`: the MLflow client sends one `Authorization` header (basic-auth or a
bearer token), so IAP's token cannot ride in it; IAP also accepts the token in
`Proxy-Authorization` and strips it before the request reaches MLflow. IAP then forwards the
person's identity as its own signed header, which the server plugin verifies
(`magenta_release.server.auth`).

Where the ID token comes from (audience = `MAGENTA_RELEASE_IAP_CLIENT_ID`, the OAuth client id of
one of IAP's programmatic clients; the server checks a different audience, the signed header's,
`MAGENTA_RELEASE_IAP_HEADER_AUDIENCE` in `magenta_release.server.auth`):
1. `MAGENTA_RELEASE_IAP_TOKEN_FILE`: a file holding a ready ID token (CI jobs whose Workload
   Identity Federation step writes one, and tests).
2. A service account: `google.oauth2.id_token.fetch_id_token` (a key file named by
   GOOGLE_APPLICATION_CREDENTIALS, or the metadata server on Cloud Run, GKE Workload Identity
   and GCE, which is what Dagster uses).
3. A person: the user credentials of `gcloud auth application-default login` via
   `google.auth.default()`. Their ID token is issued to gcloud's OAuth client, so IAP must list
   that client among its programmatic clients (IAP settings, `programmaticClients`).

Tokens are cached in the process until five minutes before they expire."""

from __future__ import annotations

import os
import time
from pathlib import Path

from magenta_release.core.extras import require

AUDIENCE_ENV = "MAGENTA_RELEASE_IAP_CLIENT_ID"
# The one name both sides read before the audiences were split: set alone, it is an error that
# names the new variables, never a silent switch to unauthenticated requests.
OLD_AUDIENCE_ENV = "MAGENTA_RELEASE_IAP_AUDIENCE"
TOKEN_FILE_ENV = "MAGENTA_RELEASE_IAP_TOKEN_FILE"  # noqa: S105 - a variable name
HEADER = "Proxy-Authorization"
REFRESH_BEFORE_SECONDS = 300

_cache: dict[str, tuple[str, float]] = {}


class IapCredentialsError(Exception):
    """No ID token could be obtained for IAP; the text says what to set up."""


def active() -> bool:
    """True when the tracking server sits behind IAP (the client knows IAP's audience)."""
    return bool(os.environ.get(AUDIENCE_ENV, "").strip() or os.environ.get(OLD_AUDIENCE_ENV))


def _claims(token: str) -> dict[str, object]:
    """The token's claims, unverified: the client only reads what it will present; IAP and
    the server verify it."""
    require("jwt", "reaching an IAP-protected server")
    import jwt

    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError as exc:
        raise IapCredentialsError(f"the IAP ID token is not a JWT ({exc})") from exc


def _fetch(audience: str) -> str:
    token_file = os.environ.get(TOKEN_FILE_ENV)
    if token_file:
        try:
            return Path(token_file).read_text().strip()
        except OSError as exc:
            raise IapCredentialsError(f"{TOKEN_FILE_ENV}={token_file} cannot be read") from exc
    require("google.auth", "reaching an IAP-protected server")
    import google.auth
    from google.auth import exceptions
    from google.auth.transport.requests import Request
    from google.oauth2 import id_token

    request = Request()
    try:  # a service account (key file or metadata server)
        return str(id_token.fetch_id_token(request, audience))  # type: ignore[no-untyped-call]
    except exceptions.DefaultCredentialsError:
        pass
    try:
        credentials, _ = google.auth.default()  # a person (gcloud ADC)
        credentials.refresh(request)  # type: ignore[no-untyped-call]
    except exceptions.GoogleAuthError as exc:
        raise IapCredentialsError(
            "no Google credentials for IAP: run `gcloud auth application-default login` "
            f"(people) or use a service account ({exc})"
        ) from exc
    token = getattr(credentials, "id_token", None)
    if not token:
        raise IapCredentialsError(
            "the Google credentials carry no ID token; run `gcloud auth application-default "
            "login` again, or use a service account"
        )
    return str(token)


def id_token() -> str:
    """An ID token for IAP's audience, cached until shortly before it expires."""
    audience = os.environ.get(AUDIENCE_ENV, "").strip()
    if not audience and os.environ.get(OLD_AUDIENCE_ENV):
        raise IapCredentialsError(
            f"{OLD_AUDIENCE_ENV} is no longer read: a client sets {AUDIENCE_ENV} (the OAuth "
            "client id its ID token is issued for); only the server sets "
            "MAGENTA_RELEASE_IAP_HEADER_AUDIENCE"
        )
    if not audience:
        raise IapCredentialsError(f"{AUDIENCE_ENV} is not set")
    key = f"{audience}\0{os.environ.get(TOKEN_FILE_ENV, '')}"
    cached = _cache.get(key)
    if cached and cached[1] - REFRESH_BEFORE_SECONDS > time.time():
        return cached[0]
    token = _fetch(audience)
    exp = _claims(token).get("exp")
    _cache[key] = (token, float(exp) if isinstance(exp, int | float) else 0.0)
    return token


def identity() -> str | None:
    """The e-mail the ID token names (what IAP will vouch for), or None."""
    email = _claims(id_token()).get("email")
    return str(email) if email else None


class IapRequestHeaderProvider:
    """MLflow `RequestHeaderProvider` (duck-typed: MLflow calls these two methods)."""

    def in_context(self) -> bool:
        return active()

    def request_headers(self) -> dict[str, str]:
        return {HEADER: f"Bearer {id_token()}"}
