"""Who may write governed state through the REST API: nobody. The release authority
(`server.authority`) writes it with the server's own store access; every request that would
write it through MLflow's API is refused, for every user, admins included.

Governed state, and how a request is seen to touch it:

- a governed registered model (one with an audit log `<model>-audit-log`, or the audit head it
  records), its versions, their tags and aliases, its description: any registry write naming
  it (create, rename from or to it, update, delete, tags, aliases, versions, stages);
- the names the tool uses for itself (`core.policy.reserved_name`): audit logs, release locks
  and their break markers, whatever they are called, governed or not (a hand-made lock with a
  start time in the future blocks every release; a decoy log hides the real one);
- the stored policies and the released model files: the runs, logged models and artifacts of
  the experiments `magenta-release-policies` and `magenta-release-releases`, and those names;
- each governed model's training experiment (the one its policy in force names): renaming,
  deleting or restoring it, or creating an experiment with its name. The policy names it by
  name, so an experiment renamed away and re-created empty under the name would make every
  pending proposal unapprovable while `status` still says ok. Runs are still logged into it.

The fields of a request are read by MLflow's own parser (`_get_request_message` with the
handler's request class, `view_args`, the artifact path as the handler canonicalises it), after
`server.requests` has refused every request MLflow's readers would read differently. Matching
Flask endpoint names, not paths, covers `/api/` and `/ajax-api/` alike. MLflow's FastAPI
artifact upload (`PUT .../mlflow-artifacts/artifacts/{path}`) never passes Flask's hooks: the
ASGI middleware `AsgiGuard` refuses it for the governed experiments.

Refusals are HTTP 403 with error code PERMISSION_DENIED and a message saying why."""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from magenta_release.core.audit import HEAD_TAG, LOG_SUFFIX
from magenta_release.core.policy import RESERVED_EXPERIMENTS, reserved_name

if TYPE_CHECKING:
    from flask import Response

READS = frozenset({"GET", "HEAD", "OPTIONS"})
UNREADABLE = "?"


class Refused(Exception):
    """The request is refused; the text says why."""


class Names(Protocol):
    """What the rules read of the store (the server's own in production, a fake in tests)."""

    def model_governed(self, name: str) -> bool:
        """Whether registered model `name` has an audit log or records an audit head."""
        ...

    def reserved_experiment_ids(self) -> set[str]: ...

    def experiment_of_run(self, run_id: str) -> str | None: ...

    def experiment_of_logged_model(self, model_id: str) -> str | None: ...

    def governed_experiments(self) -> dict[str, str]:
        """The training experiment of each governed model: name -> id ("" when missing)."""
        ...


@dataclass(frozen=True)
class Target:
    """What a write names, as MLflow's handler will read it."""

    models: tuple[str, ...] = ()  # registered models
    experiment_names: tuple[str, ...] = ()  # experiments created or renamed to
    experiments: tuple[str, ...] = ()  # experiment ids
    experiment_moves: tuple[str, ...] = ()  # experiment ids renamed, deleted or restored
    runs: tuple[str, ...] = ()
    logged_models: tuple[str, ...] = ()
    artifact_paths: tuple[str, ...] = ()  # paths in the artifact destination
    unreadable: str | None = None  # a write whose target cannot be read is refused


def decide(names: Names, target: Target) -> None:
    """Refused if the write touches governed state; else None."""
    if target.unreadable:
        raise Refused(f"the request cannot be read as MLflow reads it ({target.unreadable})")
    for model in target.models:
        if reserved_name(model):
            raise Refused(
                f"{model} is a name magenta-release uses for itself (audit logs, release locks); "
                "only its release authority writes it"
            )
        if names.model_governed(model):
            raise Refused(
                f"{model} is governed by magenta-release: its versions, tags, aliases and "
                "description change only through the release authority (magenta-release "
                "propose / approve / reject / rollback / repair)"
            )
    if target.experiment_names or target.experiment_moves:
        _check_governed_experiments(names, target)
    reserved = names.reserved_experiment_ids()
    for what, found in _experiments_of(names, target):
        if found == UNREADABLE:
            raise Refused(f"{what} is not a path MLflow accepts")
        if found is not None and found in reserved:
            raise Refused(
                f"{what} is in an experiment of magenta-release (stored policies or released "
                "model files); only its release authority writes there"
            )


def _check_governed_experiments(names: Names, target: Target) -> None:
    for name in target.experiment_names:
        if name.casefold().strip() in RESERVED_EXPERIMENTS:
            raise Refused(f"experiment {name} is magenta-release's own; nobody else writes it")
    governed = names.governed_experiments()
    ids = {eid: name for name, eid in governed.items() if eid}
    for name in target.experiment_names:
        if governed.get(name):  # a governed experiment not created yet: the first train does
            raise Refused(
                f"experiment {name} is the training experiment of a governed model: its policy "
                "names it, so nobody renames, deletes or re-creates it (runs are logged as usual)"
            )
    for experiment in target.experiment_moves:
        if experiment in ids:
            raise Refused(
                f"experiment {experiment} ({ids[experiment]}) is the training experiment of a "
                "governed model: nobody renames, deletes or restores it"
            )


def _experiments_of(names: Names, target: Target) -> Iterable[tuple[str, str | None]]:
    for experiment in target.experiments:
        yield f"experiment {experiment}", experiment
    for run in target.runs:
        yield f"run {run}", names.experiment_of_run(run)
    for model in target.logged_models:
        yield f"logged model {model}", names.experiment_of_logged_model(model)
    for path in target.artifact_paths:
        yield f"artifact {path[:100]}", artifact_experiment(path)


def artifact_experiment(path: str) -> str | None:
    """The experiment id an artifact-destination path lies in (its first segment, after
    MLflow's own canonicalisation); UNREADABLE when MLflow would refuse the path."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.uri import validate_path_is_safe

    try:
        canonical = str(validate_path_is_safe(path))  # type: ignore[no-untyped-call]
    except MlflowException:
        return UNREADABLE
    # the artifact repository resolves `./` and `//` (a local destination: the file system)
    first = posixpath.normpath(canonical).strip("/").split("/", 1)[0]
    return None if first in {"", "."} else first


# ---- reading a Flask request -----------------------------------------------------------------
def _registry(cls: str, *fields: str) -> tuple[str, str, tuple[str, ...]]:
    return ("mlflow.protos.model_registry_pb2", cls, fields)


def _service(cls: str, *fields: str) -> tuple[str, str, tuple[str, ...]]:
    return ("mlflow.protos.service_pb2", cls, fields)


# Flask endpoint -> (module, request class, fields naming registered models)
MODEL_WRITES = {
    "_create_registered_model": _registry("CreateRegisteredModel", "name"),
    "_rename_registered_model": _registry("RenameRegisteredModel", "name", "new_name"),
    "_update_registered_model": _registry("UpdateRegisteredModel", "name"),
    "_delete_registered_model": _registry("DeleteRegisteredModel", "name"),
    "_set_registered_model_tag": _registry("SetRegisteredModelTag", "name"),
    "_delete_registered_model_tag": _registry("DeleteRegisteredModelTag", "name"),
    "_set_registered_model_alias": _registry("SetRegisteredModelAlias", "name"),
    "_delete_registered_model_alias": _registry("DeleteRegisteredModelAlias", "name"),
    "_create_model_version": _registry("CreateModelVersion", "name"),
    "_update_model_version": _registry("UpdateModelVersion", "name"),
    "_transition_stage": _registry("TransitionModelVersionStage", "name"),
    "_delete_model_version": _registry("DeleteModelVersion", "name"),
    "_set_model_version_tag": _registry("SetModelVersionTag", "name"),
    "_delete_model_version_tag": _registry("DeleteModelVersionTag", "name"),
}
RUN_WRITES = {
    "_update_run": _service("UpdateRun", "run_id", "run_uuid"),
    "_delete_run": _service("DeleteRun", "run_id"),
    "_restore_run": _service("RestoreRun", "run_id"),
    "_set_tag": _service("SetTag", "run_id", "run_uuid"),
    "_delete_tag": _service("DeleteTag", "run_id"),
    "_log_batch": _service("LogBatch", "run_id"),
    "_log_metric": _service("LogMetric", "run_id", "run_uuid"),
    "_log_param": _service("LogParam", "run_id", "run_uuid"),
    "_log_inputs": _service("LogInputs", "run_id"),
    "_log_outputs": _service("LogOutputs", "run_id"),
    "_log_model": _service("LogModel", "run_id"),
}
EXPERIMENT_WRITES = {
    "_create_run": _service("CreateRun", "experiment_id"),
    "_create_logged_model": _service("CreateLoggedModel", "experiment_id"),
    "_update_experiment": _service("UpdateExperiment", "experiment_id"),
    "_delete_experiment": _service("DeleteExperiment", "experiment_id"),
    "_restore_experiment": _service("RestoreExperiment", "experiment_id"),
    "_set_experiment_tag": _service("SetExperimentTag", "experiment_id"),
    "_delete_experiment_tag": _service("DeleteExperimentTag", "experiment_id"),
}
EXPERIMENT_MOVES = {
    "_update_experiment": _service("UpdateExperiment", "experiment_id"),
    "_delete_experiment": _service("DeleteExperiment", "experiment_id"),
    "_restore_experiment": _service("RestoreExperiment", "experiment_id"),
}
EXPERIMENT_NAMES = {
    "_create_experiment": _service("CreateExperiment", "name"),
    "_update_experiment": _service("UpdateExperiment", "new_name"),
}
LOGGED_MODEL_WRITES = frozenset(
    {
        "_finalize_logged_model",
        "_delete_logged_model",
        "_set_logged_model_tags",
        "_delete_logged_model_tag",
        "_log_logged_model_params",
    }
)
ARTIFACT_WRITES = frozenset(
    {
        "_upload_artifact",
        "_delete_artifact_mlflow_artifacts",
        "_create_multipart_upload_artifact",
        "_complete_multipart_upload_artifact",
        "_abort_multipart_upload_artifact",
    }
)
# Any other write naming these fields at the top of its body (either spelling protobuf's JSON
# parser accepts) is judged by them too: traces, scorers, datasets, jobs of an experiment.
GENERIC = {
    "experiment_id": "experiments",
    "experimentId": "experiments",
    "run_id": "runs",
    "runId": "runs",
    "run_uuid": "runs",
    "runUuid": "runs",
}


def _message(spec: tuple[str, str, tuple[str, ...]]) -> dict[str, str]:
    """The named fields of the request, as the handler's parser reads them."""
    import importlib

    from mlflow.server.handlers import _get_request_message

    module, cls, fields = spec
    message = _get_request_message(getattr(importlib.import_module(module), cls)())  # type: ignore[no-untyped-call]
    return {f: str(getattr(message, f)) for f in fields if getattr(message, f, "")}


def target_of(endpoint: str) -> Target:  # noqa: C901 - one branch per family of routes
    """What the current Flask request writes (empty for a read or an unrelated route)."""
    from flask import request
    from mlflow.exceptions import MlflowException

    try:
        if endpoint in MODEL_WRITES:
            return Target(models=tuple(_message(MODEL_WRITES[endpoint]).values()))
        if endpoint in LOGGED_MODEL_WRITES:
            return Target(logged_models=(str((request.view_args or {}).get("model_id", "")),))
        if endpoint in ARTIFACT_WRITES:
            path = (request.view_args or {}).get("artifact_path") or ""
            return Target(artifact_paths=(str(path),))
        if endpoint == "serve_upload_artifact":  # the UI's upload: ?run_uuid=&path=
            return Target(runs=(request.args.get("run_uuid", ""),))
        found: dict[str, list[str]] = {"runs": [], "experiments": [], "names": [], "moves": []}
        if endpoint in RUN_WRITES:
            found["runs"] += _message(RUN_WRITES[endpoint]).values()
        if endpoint in EXPERIMENT_WRITES:
            found["experiments"] += _message(EXPERIMENT_WRITES[endpoint]).values()
        if endpoint in EXPERIMENT_NAMES:
            found["names"] += _message(EXPERIMENT_NAMES[endpoint]).values()
        if endpoint in EXPERIMENT_MOVES:
            found["moves"] += _message(EXPERIMENT_MOVES[endpoint]).values()
        body = request.get_json(force=True, silent=True)
        if isinstance(body, dict):
            if endpoint == "_create_presigned_upload_url":
                return Target(artifact_paths=(str(body.get("path", "")),))
            for key, kind in GENERIC.items():
                value = body.get(key)
                if isinstance(value, str | int) and value != "":
                    found[kind].append(str(value))
    except MlflowException as exc:
        return Target(unreadable=str(exc.message)[:200])
    return Target(
        experiment_names=tuple(found["names"]),
        experiments=tuple(dict.fromkeys(found["experiments"])),
        experiment_moves=tuple(dict.fromkeys(found["moves"])),
        runs=tuple(dict.fromkeys(found["runs"])),
    )


@dataclass
class ServerNames:
    """The rules' reads against the server's own stores. The ids of the reserved experiments
    are cached briefly (they never change once created; a new one is seen within seconds),
    a run's or a logged model's experiment for the process (it never changes)."""

    ttl: float = 5.0
    _reserved: tuple[float, set[str]] = (0.0, set())
    _experiment_of: dict[str, str] = field(default_factory=dict)

    def model_governed(self, name: str) -> bool:
        if _model_tags(f"{name}{LOG_SUFFIX}") is not None:
            return True
        own = _model_tags(name)
        return own is not None and HEAD_TAG in own

    def reserved_experiment_ids(self) -> set[str]:
        from mlflow.server.handlers import _get_tracking_store

        at, ids = self._reserved
        if time.monotonic() - at < self.ttl and ids:
            return ids
        store = _get_tracking_store()
        found = {
            str(e.experiment_id)
            for name in RESERVED_EXPERIMENTS
            if (e := store.get_experiment_by_name(name)) is not None  # type: ignore[no-untyped-call]
        }
        self._reserved = (time.monotonic(), found)
        return found

    def experiment_of_run(self, run_id: str) -> str | None:
        from mlflow.server.handlers import _get_tracking_store

        return self._cached(
            f"run:{run_id}",
            lambda: _missing_is_none(
                lambda: _get_tracking_store().get_run(run_id)  # type: ignore[no-untyped-call]
            ),
            lambda run: str(run.info.experiment_id),
        )

    def experiment_of_logged_model(self, model_id: str) -> str | None:
        from mlflow.server.handlers import _get_tracking_store

        return self._cached(
            f"model:{model_id}",
            lambda: _missing_is_none(lambda: _get_tracking_store().get_logged_model(model_id)),
            lambda model: str(model.experiment_id),
        )

    def governed_experiments(self) -> dict[str, str]:
        """Read afresh on every experiment create, rename, delete or restore (rare requests):
        each governed model's policy in force, through the server's own store."""
        from mlflow.server.handlers import _get_tracking_store

        from magenta_release.app.context import Context
        from magenta_release.core.errors import ReleaseError
        from magenta_release.io import policy_store
        from magenta_release.server.store import ServerStore

        store = ServerStore("magenta-release-guard")
        tracking = _get_tracking_store()
        found: dict[str, str] = {}
        for model in policy_store.governed_models(store.client):
            try:
                name = Context(store, model, notifies=False).policy.model.experiment
            except ReleaseError:
                continue  # no policy in force (yet), or a broken log: `audit verify` says so
            experiment = tracking.get_experiment_by_name(name)  # type: ignore[no-untyped-call]
            found[name] = "" if experiment is None else str(experiment.experiment_id)
        return found

    def _cached(
        self, key: str, fetch: Callable[[], Any], experiment: Callable[[Any], str]
    ) -> str | None:
        if key in self._experiment_of:
            return self._experiment_of[key]
        found = fetch()
        if found is None:
            return None  # an unknown id may exist later: its absence is never cached
        if len(self._experiment_of) > 10_000:
            self._experiment_of.clear()
        self._experiment_of[key] = experiment(found)
        return self._experiment_of[key]


def _missing_is_none(call: Callable[[], Any]) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            return None
        raise


def _model_tags(name: str) -> dict[str, str] | None:
    from mlflow.server.handlers import _get_model_registry_store

    found = _missing_is_none(
        lambda: _get_model_registry_store().get_registered_model(name)  # type: ignore[no-untyped-call]
    )
    return None if found is None else dict(found.tags or {})


NAMES = ServerNames()


def _forbidden(why: str, status: int = 403, code: str = "PERMISSION_DENIED") -> Response:
    from flask import make_response

    res = make_response(json.dumps({"error_code": code, "message": why}))
    res.status_code = status
    res.mimetype = "application/json"
    return res


def check_shape() -> Response | None:
    """Flask `before_request`, first of all hooks: refuse what MLflow's readers read
    differently (`server.requests`)."""
    from magenta_release.server import requests

    found = requests.problem(requests.of_flask())
    if found is None:
        return None
    return _forbidden(
        f"magenta-release: refused {found}", status=400, code="INVALID_PARAMETER_VALUE"
    )


def check(names: Names | None = None) -> Response | None:
    """Flask `before_request`, after MLflow's authentication: 403 for a write that touches
    governed state, whoever sends it."""
    from flask import request

    if request.method in READS:
        return None
    try:
        decide(names or NAMES, target_of(request.endpoint or ""))
    except Refused as exc:
        return _forbidden(f"magenta-release release policy: {exc}")
    return None


class AsgiGuard:
    """ASGI middleware for MLflow's native FastAPI artifact routes, which Flask's hooks never
    see: a write to the artifacts of a governed experiment is 403 for everyone (added last, it
    runs first, before authentication: nobody may write there, so who asks does not matter)."""

    def __init__(self, app: Any, names: Names | None = None) -> None:
        self.app = app
        self.names = names or NAMES

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("method", "GET") not in READS:
            path = _artifact_path(str(scope.get("path", "")))
            if path is not None:
                from starlette.concurrency import run_in_threadpool

                why = await run_in_threadpool(self._refusal, path)
                if why is not None:
                    await _send_forbidden(send, why)
                    return
        await self.app(scope, receive, send)

    def _refusal(self, path: str) -> str | None:
        try:
            decide(self.names, Target(artifact_paths=(path,)))
        except Refused as exc:
            return f"magenta-release release policy: {exc}"
        return None


def _artifact_path(path: str) -> str | None:
    """The destination path of an artifact-proxy URL, None for any other URL."""
    from magenta_release.server.requests import static_prefix, strip_prefix

    bare = strip_prefix(path, static_prefix())
    for prefix in ("/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/"):
        if bare.startswith(prefix):
            rest = bare[len(prefix) :]
            for kind in ("artifacts/", "mpu/create/", "mpu/complete/", "mpu/abort/"):
                if rest.startswith(kind):
                    return rest[len(kind) :]
            return rest
    return None


async def _send_forbidden(send: Any, why: str) -> None:
    body = json.dumps({"error_code": "PERMISSION_DENIED", "message": why}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
