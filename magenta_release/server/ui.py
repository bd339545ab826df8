"""The MLflow app `magenta-release ui` starts (`mlflow.app` entry point `magenta-release-ui`):
MLflow's own UI and API for one person's store, with the MLflow Assistant and UI telemetry off.

Why an app of our own: MLflow 3.17.2 has no flag for either. Its UI bundle offers the Assistant
(by default a local model provider) whenever the page's host is `localhost`, `127.0.0.1` or
`::1` (`canUseAssistant = isLocalServer || remote_access_allowed`), and the server answers the
Assistant's routes (`/ajax-api/3.0/mlflow/assistant/*`) for local callers. This app answers
those routes 404 whatever the host, and takes the UI's telemetry (`POST
/ajax-api/3.0/mlflow/ui-telemetry`) as disabled without looking at it; `cli.ui` opens the page
under a host the bundle does not call local (`mlflow.localhost`, which browsers resolve to the
loopback address), so the panel is not offered at all, and on the model's training runs
(`#/experiments/<id>`), not on the home page with its telemetry notice."""

from __future__ import annotations

import json
from typing import Any

ASSISTANT = "/ajax-api/3.0/mlflow/assistant"
UI_TELEMETRY = "/ajax-api/3.0/mlflow/ui-telemetry"


class SideDoorsShut:
    """ASGI wrapper: the Assistant's routes are not there; UI telemetry is disabled."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            path = str(scope.get("path", ""))
            if path == ASSISTANT or path.startswith(f"{ASSISTANT}/"):
                await _reply(send, 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": "off"})
                return
            if path == UI_TELEMETRY:
                await _reply(send, 200, {"disable_ui_telemetry": True, "status": "disabled"})
                return
        await self.app(scope, receive, send)


async def _reply(send: Any, status: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> Any:
    """`mlflow.app` factory (uvicorn): MLflow's FastAPI app behind `SideDoorsShut`."""
    from mlflow.server.fastapi_app import app

    return SideDoorsShut(app)
