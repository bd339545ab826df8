"""The release authority: the one writer of governed state in server mode.

People, pipelines and CI ask it to propose, approve, reject, roll back, repair, change a
policy or record a notification; it runs inside the MLflow server process, checks each request
against the model's stored policy and audit log with the same rules the embedded store runs
(`core.decisions`, `core.lifecycle`, `core.audit`, the `commit_*` halves of the use cases),
and writes with the server's own store access (`server.store`). The REST API refuses every
direct write to governed names for every user, admins included (`server.guard`), so nothing it
did not decide can appear in the registry, the log, the policies or the released files.

Every endpoint is `POST /api/2.0/magenta-release/<action>` with a JSON object body; MLflow's
authentication (basic-auth, or the IAP e-mail) names the caller, who is the event's actor:
nothing in the body says who is asking. What the caller's machine did (the gates at propose)
is checked where it can be: the evidence is the canonical text its hash names, computed for
the files the authority itself copies; the approver's machine re-computes the gates before it
asks to approve. An answer is the decision as JSON, or `{error_code, message, exit_code}`
with the exit code the CLI reports (1 policy, 2 bad input, 3 integrity, 4 unreachable)."""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from magenta_release.app import decide, repair
from magenta_release.app import propose as proposals
from magenta_release.app.context import Context
from magenta_release.app.services import candidate, lifecycle, policies
from magenta_release.core import decisions, integrity, keys
from magenta_release.core.errors import (
    BadInput,
    IntegrityViolation,
    PolicyRefused,
    ReleaseError,
    Stale,
)
from magenta_release.core.evidence import Evidence
from magenta_release.core.limits import (
    MAX_EVIDENCE,
    MAX_GATE_DETAIL,
    MAX_GATES,
    MAX_NOTE,
    MAX_REASON,
    check_text,
    require_reason,
)
from magenta_release.core.messages import TAG_PREFIX
from magenta_release.core.policy import RELEASES_EXPERIMENT, NotifyEvent, parse_policy
from magenta_release.core.states import Action, Status
from magenta_release.io import policy_store
from magenta_release.io.lock import release_lock
from magenta_release.server.store import ServerStore

if TYPE_CHECKING:
    from flask import Flask, Response

log = logging.getLogger(__name__)

PREFIX = "/api/2.0/magenta-release"
STALE = "MAGENTA_STALE"
MAX_OUTCOME = 4000  # a notification outcome is a version tag (5,000 characters on PostgreSQL)
STATUS_OF_EXIT = {1: 403, 2: 400, 3: 409, 4: 503}
CODE_OF_EXIT = {
    1: "PERMISSION_DENIED",
    2: "INVALID_PARAMETER_VALUE",
    3: "MAGENTA_INTEGRITY",
    4: "TEMPORARILY_UNAVAILABLE",
}


# ---- the requests ----------------------------------------------------------------------------
def _text(body: dict[str, Any], key: str, *, empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not (empty or value):
        raise BadInput(f"`{key}` must be a{'' if empty else ' non-empty'} string")
    return value


def _number(body: dict[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadInput(f"`{key}` must be a version number")
    return value


def _context(user: str, body: dict[str, Any], *, governed: bool = True) -> Context:
    """The request's context: the model it names, the authenticated caller. Every action but a
    model's first policy needs a governed model (its policy in force is read here)."""
    ctx = Context(ServerStore(user), _text(body, "model"), notifies=False)
    if governed:
        _ = ctx.policy_version  # BadInput for a model with no policy; exit 3 if its log is gone
    return ctx


def propose(user: str, body: dict[str, Any]) -> dict[str, Any]:
    """Register a run's model as a new version of a governed model, with the gates the
    caller's machine evaluated (`evidence`, canonical JSON) against today's champion and
    policy. The model files are copied from the run to a run of `magenta-release-releases`,
    where only the authority writes; the version's source points there and its manifest is the
    copy's. Proposing a run again answers the version it already has."""
    ctx = _context(user, body)
    run_id, source, text = _text(body, "run_id"), _text(body, "source"), _text(body, "evidence")
    note = _text(body, "note", empty=True)
    model_id = body.get("model_id")
    if model_id is not None and not isinstance(model_id, str):
        raise BadInput("`model_id` must be a string or null")
    check_text(note, "--note", MAX_NOTE)
    if len(text) > MAX_EVIDENCE:
        raise BadInput(f"`evidence` is {len(text):,} characters; at most {MAX_EVIDENCE:,}")
    evidence = Evidence.parse(text)
    if evidence is None or evidence.dumps() != text or evidence.run_id != run_id:
        raise BadInput(
            "`evidence` is not the canonical evidence of the run's gates (Evidence.dumps())"
        )
    if len(evidence.gates) > MAX_GATES or any(
        len(g.detail) > MAX_GATE_DETAIL or len(g.name) > 200 for g in evidence.gates
    ):
        raise BadInput(
            f"`evidence` holds more than {MAX_GATES} gates, or a gate whose detail is over "
            f"{MAX_GATE_DETAIL:,} characters; the gates never write that much"
        )
    actor = ctx.actor
    _may_propose(ctx, user)
    ctx.check_residency()
    with release_lock(ctx.store, ctx.model):
        ctx.reread()
        lifecycle.check_locked(ctx)
        run = ctx.runs.get_run(run_id)
        if run.status != "FINISHED":
            raise BadInput(f"run {run_id} is {run.status}; only FINISHED runs can be proposed")
        inputs = {
            "dataset_sha256": run.dataset_sha256,
            "eval_sha256": run.tags.get(keys.RUN_EVAL_SHA256),
        }
        if any(evidence.facts.get(k) != v for k, v in inputs.items()):
            raise BadInput(
                f"`evidence` does not name the inputs run {run.run_id} recorded (dataset and "
                "evaluation digests); evaluate the gates again"
            )
        existing = ctx.registry.version_for_run(run.run_id)
        if existing is not None and (
            existing.status not in proposals.REPROPOSABLE
            or (
                existing.status == Status.FAILED
                and proposals.judged_alike(Evidence.of(existing), evidence)
            )
        ):
            return proposals.existing_proposal(existing).to_json()
        state = lifecycle.state(ctx)
        if evidence.champion != state.champion or evidence.policy_sha256 != ctx.policy.sha256:
            raise Stale(
                f"the champion of {ctx.model} is {state.champion} and its policy "
                f"{ctx.policy.sha256[:12]} since the gates were evaluated; evaluate them again"
            )
        ref = _model_of(ctx, run, source, model_id)
        with tempfile.TemporaryDirectory(prefix="magenta-authority-") as tmp:
            folder = ctx.runs.download_uri(ref.source, Path(tmp) / "model")
            integrity.check_not_pickle(folder, ref.label)
            files = integrity.manifest(folder)
            digest = integrity.manifest_digest(files)
            recorded = run.tags.get(keys.RUN_MODEL_MANIFEST_SHA256)
            if digest != evidence.manifest_sha256 or (recorded and recorded != digest):
                raise IntegrityViolation(
                    f"run {run.run_id}: its model files are not the ones the gates evaluated "
                    "(SHA-256 manifest differs); nothing was registered — propose again, or "
                    "train again if the files were changed"
                )
            released = _release_copy(ctx, run, ref, folder)
        earlier = existing.version if existing is not None else None
        version = proposals.register(ctx, run, released, actor, note, evidence, files, earlier)
        v = ctx.registry.version(version)
        report = proposals.report_text(ctx.model, v, run)
        ctx.registry.set_description(version, report)
    return proposals.Proposal(
        version, v.status, run.run_id, list(evidence.gates), evidence.champion, False, report
    ).to_json()


def _model_of(ctx: Context, run: Any, source: str, model_id: str | None) -> candidate.ModelRef:
    """The run's model the caller evaluated, if `source` is one of the run's own: a path
    under `runs:/<run>/`, or the artifact location of a LoggedModel the run produced."""
    parsed = urlparse(source)
    if parsed.scheme == "runs":
        owner, _, path = (parsed.netloc + parsed.path).strip("/").partition("/")
        clean = posixpath.normpath(path) if path else ""
        if owner != run.run_id or not clean or clean.startswith((".", "/")):
            raise BadInput(f"source {source[:200]} is not a folder of run {run.run_id}")
        return candidate.ModelRef(f"runs:/{run.run_id}/{clean}", f"run {run.run_id}")
    if model_id is not None:
        from mlflow.exceptions import MlflowException

        try:
            found = ctx.store.client.get_logged_model(model_id)
        except MlflowException:
            found = None
        if (
            found is not None
            and found.source_run_id == run.run_id
            and str(found.artifact_location) == source
        ):
            return candidate.ModelRef(source, f"model {found.name} of run {run.run_id}", model_id)
    raise BadInput(
        f"source {source[:200]} is not a model of run {run.run_id} (runs:/{run.run_id}/PATH, "
        "or the artifact location of a model it logged)"
    )


def _release_copy(
    ctx: Context, run: Any, ref: candidate.ModelRef, folder: Path
) -> candidate.ModelRef:
    """Copy the verified files to a run of their own in the releases experiment."""
    runs = ctx.store.runs(RELEASES_EXPERIMENT)
    copy = runs.create_run(
        f"{ctx.model} from run {run.run_id[:12]}",
        {
            "magenta.released.model": ctx.model,
            "magenta.released.from_run": run.run_id,
            "magenta.released.by": ctx.actor,
        },
    )
    ctx.store.client.log_artifacts(copy, str(folder), "model")
    runs.end_run(copy, "FINISHED")
    base = str(ctx.store.client.get_run(copy).info.artifact_uri).rstrip("/")
    return candidate.ModelRef(f"{base}/model", f"released copy of {ref.label}", ref.model_id)


def approve(user: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(user, body)
    version, reason = _number(body, "version"), _text(body, "reason")
    require_reason(reason, "this version should be released")
    ctx.check_residency()
    return decide.commit_approve(
        ctx, int(version or 0), reason=reason, actor=ctx.actor, reread=True
    ).to_wire()


def reject(user: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(user, body)
    version, reason = _number(body, "version"), _text(body, "reason")
    require_reason(reason, "this version is rejected")
    ctx.check_residency()
    return decide.commit_reject(
        ctx, int(version or 0), reason=reason, actor=ctx.actor, reread=True
    ).to_wire()


def rollback(user: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(user, body)
    to, reason = _number(body, "to"), _text(body, "reason")
    champion = _number(body, "champion", optional=True)
    require_reason(reason, "the champion is rolled back")
    ctx.check_residency()
    return decide.commit_rollback(
        ctx, reason=reason, to=to, actor=ctx.actor, reread=True, asked=(champion, int(to or 0))
    ).to_wire()


MAX_FAILED_RUNS = 50


def repair_store(user: str, body: dict[str, Any]) -> dict[str, Any]:
    """Bring the registry back to what the log says, by an approver or a policy owner (the
    people who run releases). The runs it reports as marked FAILED (the client marks its own
    abandoned proposals) are checked here: runs of the model's experiment that the server
    sees FAILED, at most MAX_FAILED_RUNS; anything else is refused, and nothing is appended
    when nothing is to repair."""
    ctx = _context(user, body)
    reason = _text(body, "reason")
    require_reason(reason, "the store is repaired (what happened)")
    failed = body.get("failed_runs") or []
    if not isinstance(failed, list) or not all(isinstance(r, str) for r in failed):
        raise BadInput("`failed_runs` must be a list of run ids")
    if len(failed) > MAX_FAILED_RUNS:
        raise BadInput(f"`failed_runs` names {len(failed)} runs; at most {MAX_FAILED_RUNS}")
    actor = ctx.actor
    approval = ctx.policy.approval
    if not (
        decisions.is_approver(approval, actor)
        or any(decisions.same_person(actor, o) for o in approval.policy_owners)
    ):
        raise PolicyRefused(
            f"{actor} may not repair {ctx.model}: repair is for its approvers and policy owners "
            f"({', '.join(dict.fromkeys([*approval.approvers, *approval.policy_owners]))})"
        )
    ctx.check_residency()
    reported = {
        str(r)
        for e in lifecycle.verified_log(ctx)
        if e.action == Action.REPAIR
        for r in (e.details.get("failed_runs") or [])
    }
    failed = [r for r in dict.fromkeys(failed) if r not in reported]  # each run once
    experiment = ctx.store.client.get_experiment_by_name(ctx.policy.model.experiment)
    for run_id in failed:
        run = _failed_run(ctx, run_id)
        if experiment is None or str(run.info.experiment_id) != str(experiment.experiment_id):
            raise BadInput(
                f"run {run_id[:64]} is not in experiment {ctx.policy.model.experiment!r} of "
                f"{ctx.model}; repair reports only that model's runs"
            )
    return repair.commit_repair(ctx, reason, actor=actor, failed_runs=failed).to_json()


def _failed_run(ctx: Context, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        run = ctx.store.client.get_run(run_id)
    except MlflowException:
        run = None
    if run is None or run.info.status != "FAILED":
        raise BadInput(
            f"run {run_id[:64]} is not a FAILED run of this server; `failed_runs` names the "
            "runs repair marked FAILED"
        )
    return run


def set_policy(user: str, body: dict[str, Any]) -> dict[str, Any]:
    """Store a new policy version (under four eyes: propose it, or confirm the one proposed)."""
    ctx = _context(user, body, governed=False)
    text, reason = _text(body, "text"), _text(body, "reason")
    check_text(reason, "--reason", MAX_REASON)
    raw = text.encode("utf-8")
    new = parse_policy(raw, f"the policy sent for {ctx.model}")
    if new.registered_name != ctx.model:
        raise BadInput(f"the policy names model {new.registered_name!r}, not {ctx.model!r}")
    actor = ctx.actor
    if not policy_store.versions(ctx.log):
        _may_govern(ctx, user)
    policies.own_experiment(ctx.store, new)
    result = policies.commit_policy(ctx, raw, new, reason=reason, actor=actor, second_person=True)
    return result.to_json()


def _may_govern(ctx: Context, user: str) -> None:
    """Who stores a model's first policy: an MLflow admin only, never over a deleted log.
    Under `default_permission = READ` anyone may create a registered model, so "whoever may
    create it" would let anyone govern any new name (or a look-alike of a governed one) as its
    only owner and approver with four eyes off."""
    ctx.check_log_not_gone()
    if not _is_admin(user):
        raise PolicyRefused(
            f"{ctx.model} has no stored policy yet, and on a server only an MLflow admin stores "
            "a model's first policy (magenta-release init or policy set, as the admin); policy "
            "owners change it afterwards"
        )


def _is_admin(user: str) -> bool:
    from mlflow.server.auth import store as users

    return users.has_user(user) and bool(users.get_user(user).is_admin)


PROPOSING = ("EDIT", "MANAGE")


def _may_propose(ctx: Context, user: str) -> None:
    """Who proposes: an MLflow admin, or whoever holds EDIT or MANAGE on the registered model
    or on the model's training experiment, as MLflow's auth store resolves it (explicit
    grants, else `default_permission`). Creating a version used to need EDIT on the model;
    the authority writes it with its own access, so it asks the same question itself."""
    if _is_admin(user):
        return
    from mlflow.server import auth

    held = [_model_permission(auth, ctx.model, user)]
    experiment = ctx.store.client.get_experiment_by_name(ctx.policy.model.experiment)
    if experiment is not None:
        held.append(_experiment_permission(auth, str(experiment.experiment_id), user))
    if not any(p in PROPOSING for p in held):
        raise PolicyRefused(
            f"{user} may not propose to {ctx.model}: proposing needs EDIT or MANAGE on the "
            f"registered model or on experiment {ctx.policy.model.experiment!r} (ask an MLflow "
            "admin to grant it); nothing was registered"
        )


def _model_permission(auth: Any, model: str, user: str) -> str:
    found = auth._get_role_permission_or_default(
        auth._role_permission_for(
            username=user,
            resource_type="registered_model",
            resource_key=model,
            workspace_lookup_id=model,
            workspace_fetcher=auth._get_model_registry_store().get_registered_model,
            workspace_label="registered model",
        )
    )
    return str(found.name)


def _experiment_permission(auth: Any, experiment_id: str, user: str) -> str:
    return str(auth._get_experiment_permission(experiment_id, user).name)


# The decision whose notification a version's `release.notify.<event>` tag records.
DECIDED_BY = {
    NotifyEvent.PROPOSED: Action.PROPOSE,
    NotifyEvent.GATES_FAILED: Action.PROPOSE,
    NotifyEvent.APPROVED: Action.APPROVE,
    NotifyEvent.REJECTED: Action.REJECT,
    NotifyEvent.ROLLED_BACK: Action.ROLLBACK,
}


def notified(user: str, body: dict[str, Any]) -> dict[str, Any]:
    """Record a notification's outcome on its version (`release.notify.<event>`): the
    client delivers webhooks (their secrets live with it), the authority writes the tag. Only
    the actor of the decision the message announced records it, once (a second outcome of the
    same decision is refused, never written over the first); a reminder or a health alert,
    which repeat, by an approver or a policy owner."""
    ctx = _context(user, body)
    version, event = _number(body, "version"), _text(body, "event")
    outcome = body.get("outcome")
    if event not in {str(e) for e in NotifyEvent}:
        raise BadInput(f"unknown notification event {event[:40]!r}")
    text = json.dumps(outcome, sort_keys=True)
    if not isinstance(outcome, dict) or len(text) > MAX_OUTCOME:
        raise BadInput(f"`outcome` must be a JSON object of at most {MAX_OUTCOME} characters")
    v = ctx.registry.version(int(version or 0))
    events = lifecycle.verified_log(ctx)
    actor, key = ctx.actor, TAG_PREFIX + event
    action = DECIDED_BY.get(NotifyEvent(event))
    if action is not None:
        decided = [e for e in events if e.action == action and e.version == v.version]
        if not decided or not decisions.same_person(decided[-1].actor, actor):
            raise PolicyRefused(
                f"{actor} did not {action} version {v.version} of {ctx.model}; only the person "
                f"who did records how its {event} notification went"
            )
        if key in v.tags:
            raise PolicyRefused(
                f"the outcome of the {event} notification of version {v.version} is recorded "
                "already; it is never written over"
            )
    elif not (
        decisions.is_approver(ctx.policy.approval, actor)
        or any(decisions.same_person(actor, o) for o in ctx.policy.approval.policy_owners)
    ):
        raise PolicyRefused(
            f"{actor} is neither an approver nor a policy owner of {ctx.model}; only they "
            f"record how a {event} notification went"
        )
    ctx.registry.set_version_tags(v.version, {key: text})
    return {"version": v.version, "event": event}


ACTIONS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "propose": propose,
    "approve": approve,
    "reject": reject,
    "rollback": rollback,
    "repair": repair_store,
    "policy-set": set_policy,
    "notified": notified,
}


# ---- Flask glue ------------------------------------------------------------------------------
def _reply(status: int, doc: dict[str, Any]) -> Response:
    from flask import make_response

    res = make_response(json.dumps(doc, default=str))
    res.status_code = status
    res.mimetype = "application/json"
    return res


def _error(exc: ReleaseError) -> Response:
    code = exc.exit_code
    error_code = STALE if isinstance(exc, Stale) else CODE_OF_EXIT.get(code, "INTERNAL_ERROR")
    doc = {"error_code": error_code, "message": str(exc), "exit_code": code}
    return _reply(STATUS_OF_EXIT.get(code, 500), doc)


def _view(name: str, action: Callable[[str, dict[str, Any]], dict[str, Any]]) -> Any:
    def view() -> Response:
        from flask import g, request

        user = str(getattr(g, "mlflow_authenticated_user", "") or "")
        if not user:  # MLflow's authentication runs first; without it nothing is decided
            return _reply(401, {"error_code": "UNAUTHENTICATED", "message": "log in first"})
        body = request.get_json(force=True, silent=True)
        try:
            if not isinstance(body, dict):
                raise BadInput("the request body must be a JSON object")
            return _reply(200, action(user, body))
        except ReleaseError as exc:
            return _error(exc)
        except Exception:
            log.exception("release authority: %s failed", name)
            doc = {
                "error_code": "INTERNAL_ERROR",
                "message": f"the release authority failed on {name}; see the server log",
                "exit_code": 4,
            }
            return _reply(500, doc)

    view.__name__ = f"magenta_release_{name.replace('-', '_')}"
    return view


def paths() -> list[str]:
    from mlflow.server.handlers import _add_static_prefix

    return [_add_static_prefix(f"{PREFIX}/{name}") for name in ACTIONS]


def register(flask_app: Flask) -> None:
    """Add the endpoints to MLflow's Flask app. MLflow's basic-auth authenticates every route
    but refuses a route it has no validator for to non-admins; each endpoint's validator lets
    an authenticated caller through, and the authority decides from the stored policy."""
    from mlflow.server.auth import BEFORE_REQUEST_VALIDATORS
    from mlflow.server.handlers import _add_static_prefix

    for name, action in ACTIONS.items():
        path = _add_static_prefix(f"{PREFIX}/{name}")
        view = _view(name, action)
        flask_app.add_url_rule(path, view.__name__, view, methods=["POST"])
        BEFORE_REQUEST_VALIDATORS[(path, "POST")] = _authenticated


def _authenticated() -> bool:
    return True
