"""The release authority, seen from the client: in server mode the CLI, Dagster and CI ask the
MLflow server's plugin (`magenta_release.server.authority`) to propose, approve, reject, roll
back, repair, change a policy or record a notification, instead of writing governed state
themselves (the server refuses those writes for everyone).

One POST per request to `<tracking URI>/api/2.0/magenta-release/<action>` with the MLflow
client's own credentials: basic-auth from MLFLOW_TRACKING_USERNAME/PASSWORD, a token, and the
request-header providers (the IAP plugin adds its ID token), exactly as MLflow's REST client
sends them. Never retried: a decision is not idempotent for everyone who might retry it. An
answer carries the exit code of the rule that refused it, so the CLI reports the server's
refusal as if the rule had run locally (1 policy, 2 bad input, 3 integrity, 4 unreachable)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from magenta_release.core.errors import (
    BadInput,
    IntegrityViolation,
    PolicyRefused,
    ReleaseError,
    Stale,
    StoreUnreachable,
)

if TYPE_CHECKING:
    from magenta_release.io.store import Store

PREFIX = "/api/2.0/magenta-release"
TIMEOUT_SECONDS = 300  # a proposal copies the model files on the server
ERRORS: dict[int, type[ReleaseError]] = {
    1: PolicyRefused,
    2: BadInput,
    3: IntegrityViolation,
    4: StoreUnreachable,
}


def of(store: Store) -> Authority | None:
    """The authority of the store's tracking server; None for an embedded store or a database
    URI (no server in between: nothing can enforce, the client writes as before)."""
    uri = store.tracking_uri
    if uri.startswith(("http://", "https://")):
        return Authority(uri)
    return None


class Authority:
    """The release endpoints of one MLflow server."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")

    def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to the action's endpoint; the answer, or the ReleaseError it carries."""
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            response = http_request(  # type: ignore[no-untyped-call]
                get_default_host_creds(self.tracking_uri),  # type: ignore[no-untyped-call]
                f"{PREFIX}/{action}",
                "POST",
                json=body,
                max_retries=0,
                timeout=TIMEOUT_SECONDS,
                raise_on_status=False,
            )
        except Exception as exc:  # requests' and MLflow's connection errors
            raise StoreUnreachable(
                f"the MLflow server at {self.tracking_uri} cannot be reached "
                f"({type(exc).__name__}); check that it runs and that MLFLOW_TRACKING_URI / "
                "--tracking-uri point at it"
            ) from exc
        return _answer(action, self.tracking_uri, response.status_code, response.text)

    def propose(
        self,
        model: str,
        *,
        run_id: str,
        source: str,
        model_id: str | None,
        evidence: str,
        note: str,
    ) -> dict[str, Any]:
        return self.call(
            "propose",
            {
                "model": model,
                "run_id": run_id,
                "source": source,
                "model_id": model_id,
                "evidence": evidence,
                "note": note,
            },
        )

    def approve(
        self, model: str, version: int, *, reason: str, champion: int | None
    ) -> dict[str, Any]:
        body = {"model": model, "version": version, "reason": reason, "champion": champion}
        return self.call("approve", body)

    def reject(self, model: str, version: int, *, reason: str) -> dict[str, Any]:
        return self.call("reject", {"model": model, "version": version, "reason": reason})

    def rollback(self, model: str, *, to: int, reason: str, champion: int | None) -> dict[str, Any]:
        body = {"model": model, "to": to, "reason": reason, "champion": champion}
        return self.call("rollback", body)

    def repair(self, model: str, *, reason: str, failed_runs: list[str]) -> dict[str, Any]:
        body = {"model": model, "reason": reason, "failed_runs": failed_runs}
        return self.call("repair", body)

    def set_policy(self, model: str, *, text: str, reason: str) -> dict[str, Any]:
        return self.call("policy-set", {"model": model, "text": text, "reason": reason})

    def record_notification(
        self, model: str, version: int, *, event: str, outcome: dict[str, Any]
    ) -> None:
        body = {"model": model, "version": version, "event": event, "outcome": outcome}
        self.call("notified", body)


def _answer(action: str, where: str, status: int, text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        doc = None
    if status == 200 and isinstance(doc, dict):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("exit_code"), int):
        message = str(doc.get("message") or doc.get("error_code") or "refused")
        if doc.get("error_code") == "MAGENTA_STALE":
            raise Stale(message)
        raise ERRORS.get(doc["exit_code"], StoreUnreachable)(message)
    if status == 401:
        raise StoreUnreachable(
            f"the MLflow server refused the credentials ({action}); set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD (or reach it through IAP)"
        )
    if status == 404:
        raise StoreUnreachable(
            f"the MLflow server at {where} has no release authority ({PREFIX}/{action} is not "
            "there): start it with the magenta-release plugin (`mlflow server --app-name "
            "magenta-release-auth`, deploy/mlflow-server)"
        )
    detail = doc.get("message") if isinstance(doc, dict) else text[:200]
    if status == 403:
        raise PolicyRefused(f"the MLflow server refused {action}: {detail}")
    raise StoreUnreachable(f"the release authority failed ({action}, HTTP {status}): {detail}")
