"""Requests the plugin cannot read exactly as MLflow's handler reads them are refused before
any check (MLflow 3.17.2, `mlflow/server/handlers.py::_get_request_message`).

MLflow's handler reads a GET's query string, and for every other method only the body: it
checks the Content-Type of POST and PUT alone, parses the body as JSON whatever its type
(`get_json(force=True)`), decodes a JSON string a second time, and ignores the query string.
MLflow's basic-auth reads a DELETE's parameters from the query string unless the body is
declared JSON, and a POST's body only when it is. So one request can name one resource to the
authorization check and another to the handler: a `text/plain` DELETE whose query names the
caller's own model and whose body names an audit log deletes the log; a body that is a JSON
string holding the JSON object passes a check that looks for an object.

A mutating call (POST, PUT, PATCH, DELETE) on the REST or the UI's API (`/api/`, `/ajax-api/`)
is therefore accepted only in the one shape every reader agrees on: no query string, a
Content-Type whose media type is exactly `application/json`, and a body that parses to a JSON
object. The routes that are not JSON by design keep their own shape and are guarded by path
(`guard`): the artifact proxy (raw bytes), the UI's upload (`upload-artifact?run_uuid=&path=`)
and basic-auth's sign-up form."""

from __future__ import annotations

from dataclasses import dataclass

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIXES = ("/api/", "/ajax-api/")
# Not JSON by design: raw uploads and a browser form (guarded by path, not by shape).
OWN_SHAPE = (
    "/api/2.0/mlflow-artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/",
    "/ajax-api/2.0/mlflow/upload-artifact",
    "/api/2.0/mlflow/users/create-ui",
)
JSON = "application/json"


@dataclass(frozen=True)
class Shape:
    """What of a request decides how MLflow's readers read it."""

    method: str
    path: str  # without the static prefix
    query_string: bytes
    content_type: str | None
    body_is_object: bool


def problem(shape: Shape) -> str | None:
    """Why the request cannot be read exactly as MLflow does, or None (also for the requests
    this rule does not cover: reads, non-API routes, the routes with a shape of their own)."""
    if shape.method not in MUTATING or not shape.path.startswith(API_PREFIXES):
        return None
    if shape.path.startswith(OWN_SHAPE):
        return None
    if shape.query_string:
        return (
            "a query string on a mutating call (MLflow's handler ignores it, its "
            "authorization may read it): send every field in the JSON body"
        )
    media = (shape.content_type or "").split(";")[0]
    if media != JSON:
        return (
            f"Content-Type {shape.content_type or '(none)'!r} on a mutating call (MLflow parses "
            f"the body as JSON whatever it says): send Content-Type: {JSON}"
        )
    if not shape.body_is_object:
        return (
            "a body that is not a JSON object (MLflow decodes a JSON string twice): send the "
            "object itself"
        )
    return None


def static_prefix() -> str:
    """MLflow's `--static-prefix` (the env var `mlflow.server.handlers` reads)."""
    import os

    return os.environ.get("_MLFLOW_STATIC_PREFIX", "").rstrip("/")


def strip_prefix(path: str, prefix: str) -> str:
    """`path` without MLflow's `--static-prefix`."""
    return path[len(prefix) :] if prefix and path.startswith(prefix) else path


def of_flask() -> Shape:
    """The shape of the current Flask request (its body parsed as MLflow's handler does)."""
    from flask import request

    body = request.get_json(force=True, silent=True) if request.method in MUTATING else None
    return Shape(
        request.method,
        strip_prefix(request.path, static_prefix()),
        request.query_string,
        request.headers.get("Content-Type"),
        isinstance(body, dict),
    )
