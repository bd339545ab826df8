"""The IAP request-header provider: what the MLflow client sends when the server is behind IAP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from magenta_release.io import iap
from tests.conftest import RELEASE_MANAGER

CLIENT_ID = "magenta-release-cli.apps.googleusercontent.com"


def _token(email: str, exp_in: float) -> str:
    # The client never verifies its own ID token (IAP does), so an HS256 token is enough here.
    now = int(time.time())
    claims = {"email": email, "aud": CLIENT_ID, "iat": now, "exp": now + int(exp_in)}
    return jwt.encode(claims, "test-secret-of-at-least-32-bytes!!", algorithm="HS256")


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "id-token"
    path.write_text(_token("alice@magenta.example", 3600) + "\n")
    monkeypatch.setenv(iap.AUDIENCE_ENV, CLIENT_ID)
    monkeypatch.setenv(iap.TOKEN_FILE_ENV, str(path))
    iap._cache.clear()
    yield path
    iap._cache.clear()


def test_inactive_without_an_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(iap.AUDIENCE_ENV, raising=False)
    assert iap.IapRequestHeaderProvider().in_context() is False


def test_adds_the_id_token_as_proxy_authorization(token_file: Path) -> None:
    provider = iap.IapRequestHeaderProvider()
    assert provider.in_context() is True
    assert provider.request_headers() == {
        "Proxy-Authorization": f"Bearer {token_file.read_text().strip()}"
    }
    assert iap.identity() == "alice@magenta.example"


def test_mlflow_sends_it_through_the_entry_point(token_file: Path) -> None:
    """Registered as `mlflow.request_header_provider`: MLflow's own resolver includes it."""
    from mlflow.tracking.request_header.registry import resolve_request_headers

    headers = resolve_request_headers()  # type: ignore[no-untyped-call]
    assert headers["Proxy-Authorization"] == f"Bearer {token_file.read_text().strip()}"
    assert "Authorization" not in headers  # basic-auth, if any, still has its own header


def test_a_token_is_reused_until_shortly_before_it_expires(token_file: Path) -> None:
    first = iap.id_token()
    token_file.write_text(_token("alice@magenta.example", 3600))
    assert iap.id_token() == first  # cached
    iap._cache.clear()
    token_file.write_text(_token("alice@magenta.example", iap.REFRESH_BEFORE_SECONDS - 60))
    short = iap.id_token()
    token_file.write_text(_token("alice@magenta.example", 3600))
    assert iap.id_token() != short  # too close to expiry: fetched again


def test_an_unreadable_token_file_is_a_clear_error(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(iap.TOKEN_FILE_ENV, str(token_file.with_name("missing")))
    with pytest.raises(iap.IapCredentialsError, match="cannot be read"):
        iap.id_token()


def test_whoami_is_the_iap_email_in_server_mode(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magenta_release.core.policy import Policy
    from magenta_release.core.settings import Settings
    from magenta_release.io.store import Store

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", RELEASE_MANAGER)
    server = Store(Settings(tracking_uri="http://127.0.0.1:9"), Policy())
    assert server.whoami() == "alice@magenta.example"
    monkeypatch.delenv(iap.AUDIENCE_ENV)
    assert server.whoami() == RELEASE_MANAGER


def test_the_old_shared_variable_is_refused_on_both_sides_naming_the_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`MAGENTA_RELEASE_IAP_AUDIENCE` once meant two audiences (the client's token, the server's
    signed header); set alone it is an error naming the variable each side now reads, never
    requests without a token or a server that checks nothing."""
    from magenta_release.server import auth

    monkeypatch.delenv(iap.AUDIENCE_ENV, raising=False)
    monkeypatch.delenv(auth.HEADER_AUDIENCE_ENV, raising=False)
    monkeypatch.setenv(iap.OLD_AUDIENCE_ENV, CLIENT_ID)
    iap._cache.clear()
    assert iap.IapRequestHeaderProvider().in_context() is True  # not silently unauthenticated
    with pytest.raises(iap.IapCredentialsError, match="MAGENTA_RELEASE_IAP_CLIENT_ID"):
        iap.id_token()
    with pytest.raises(ValueError, match="MAGENTA_RELEASE_IAP_HEADER_AUDIENCE"):
        auth.check_iap_settings()
    monkeypatch.delenv(iap.OLD_AUDIENCE_ENV)
    with pytest.raises(ValueError, match="needs MAGENTA_RELEASE_IAP_HEADER_AUDIENCE"):
        auth.check_iap_settings()
    monkeypatch.setenv(auth.HEADER_AUDIENCE_ENV, "/projects/1/locations/europe-west3/services/m")
    auth.check_iap_settings()  # the server's own variable is enough
