"""Where the policy in force lives: in the MLflow store, versioned, not in the caller's shell.

Each version of a model's policy is the TOML text, logged as the artifact of one run in the
`magenta-release-policies` experiment, and a `policy_set` event in the model's audit log that
names the run and the text's SHA-256. The hash-chained log is what makes a version count: the
newest `policy_set` event is the policy in force, and the text read back must hash to what
that event recorded (else an integrity alert, exit 3). A run or artifact written behind the
tool's back governs nothing. Only `policy set` (a use case in `policies`) writes a new one."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magenta_release.core import keys
from magenta_release.core.audit import HEAD_TAG, LOG_SUFFIX, Log
from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.core.policy import POLICY_EXPERIMENT, Policy, parse_policy
from magenta_release.core.states import Action
from magenta_release.io.store.errors import translate
from magenta_release.io.store.registry import all_registered_models
from magenta_release.io.store.runs import search_all_runs

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT = POLICY_EXPERIMENT
ARTIFACT = "release-policy.toml"
SET_ACTION = Action.POLICY_SET


@dataclass(frozen=True)
class PolicyVersion:
    """One recorded version of a model's policy (from its `policy_set` event)."""

    model: str
    version: int
    sha256: str
    run_id: str
    actor: str
    time: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "run_id": self.run_id,
            "set_by": self.actor,
            "set_at": self.time,
            "reason": self.reason,
        }


def governed_models(client: MlflowClient) -> list[str]:
    """Every registered model that has an audit log in this store, sorted."""
    with translate("listing the models in the store"):
        found = all_registered_models(client, f"name LIKE '%{LOG_SUFFIX}'")
    return sorted(m.name[: -len(LOG_SUFFIX)] for m in found if m.name.endswith(LOG_SUFFIX))


def models_with_head(client: MlflowClient) -> list[str]:
    """Registered models that record an audit-log head (models released by this tool),
    whether or not their log still exists: what `governed_models` cannot see once a log is
    deleted."""
    with translate("listing the models in the store"):
        found = all_registered_models(client)
        return sorted(m.name for m in found if HEAD_TAG in (m.tags or {}))


def default_model(client: MlflowClient, requested: str | None) -> str:
    """The model a command acts on: the one asked for, else the only one in the store."""
    if requested:
        return requested
    models = governed_models(client)
    if len(models) == 1:
        return models[0]
    if not models:
        raise BadInput(
            "no model is governed in this store yet; run `magenta-release init` (or "
            "`magenta-release policy set FILE --reason ...`)"
        )
    raise BadInput(
        f"this store governs several models ({', '.join(models)}); pass --model NAME "
        "or set MAGENTA_RELEASE_MODEL"
    )


def versions(log: Log) -> list[PolicyVersion]:
    """The policy versions a log records, oldest first."""
    model = log.model
    out: list[PolicyVersion] = []
    for e in log.events:
        if e.action != SET_ACTION:
            continue
        run_id = e.details.get("run_id")
        if not isinstance(run_id, str) or not e.policy_sha256:
            continue
        out.append(
            PolicyVersion(model, len(out) + 1, e.policy_sha256, run_id, e.actor, e.time, e.reason)
        )
    return out


def stored_runs(client: MlflowClient, model: str) -> list[tuple[str, str]]:
    """(run id, version number) of every policy run stored for `model`, whatever the log
    says: the second record `audit verify` compares the log with."""
    with translate("listing stored policy versions"):
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        runs = search_all_runs(client, [experiment.experiment_id])
    return [
        (r.info.run_id, r.data.tags.get(keys.POLICY_VERSION, "?"))
        for r in runs
        if r.data.tags.get(keys.POLICY_MODEL) == model
    ]


def read_text(client: MlflowClient, record: PolicyVersion) -> bytes:
    """A stored version's TOML, checked against the hash its event recorded (exit 3 if not)."""
    where = f"policy version {record.version} of {record.model!r} (run {record.run_id})"
    with tempfile.TemporaryDirectory(prefix="magenta-policy-") as tmp:
        try:
            with translate(f"reading {where}"):
                raw = Path(client.download_artifacts(record.run_id, ARTIFACT, tmp)).read_bytes()
        except (OSError, BadInput) as exc:  # gone: deleted run or artifacts, not a typo
            raise IntegrityViolation(
                f"{where} cannot be read ({str(exc)[:200]}); the audit log names it, so it "
                "was deleted: restore the store from a backup"
            ) from exc
    if hashlib.sha256(raw).hexdigest() != record.sha256:
        raise IntegrityViolation(
            f"the stored text of policy version {record.version} of {record.model!r} does not "
            f"match the SHA-256 its audit event recorded ({record.sha256[:12]}…): it was "
            "edited outside magenta-release; restore it from a backup"
        )
    return raw


def current_version(log: Log) -> PolicyVersion:
    """The policy version in force: the newest `policy_set` of the log."""
    found = versions(log)
    if not found:
        raise BadInput(
            f"model {log.model!r} has no release policy in this store; store one with "
            "`magenta-release policy set FILE --reason ...` (or run `magenta-release init`)"
        )
    return found[-1]


def policy_of(client: MlflowClient, record: PolicyVersion) -> Policy:
    """The policy a recorded version holds (its text checked against the recorded hash)."""
    policy = parse_policy(read_text(client, record), f"stored policy v{record.version}")
    if policy.registered_name != record.model:
        raise IntegrityViolation(
            f"stored policy v{record.version} of {record.model!r} names model "
            f"{policy.registered_name!r}; restore the store from a backup"
        )
    return policy
