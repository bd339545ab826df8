"""The release process (DESIGN.md §6): propose, approve, reject, rollback, status, history.

Statuses live in the `release.status` tag of each version; `@champion`, `@challenger` and
`@previous` are aliases. Every state change happens under the release lock, re-checks its
preconditions inside it, and appends an event to the hash-chained audit log."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magenta_release import (
    audit,
    candidate,
    card,
    evaluate,
    faults,
    identity,
    integrity,
    lifecycle,
    model_files,
    notify,
)
from magenta_release.errors import BadInput, IntegrityViolation, PolicyRefused
from magenta_release.evaluate import REPORTED_METRICS
from magenta_release.gates import (
    Gate,
    input_gates,
    markdown,
    metric_gates,
    regression_gates,
    reproducible_gate,
    value_gate,
)
from magenta_release.lock import release_lock
from magenta_release.policy import NotifyEvent
from magenta_release.states import Status
from magenta_release.store import (
    STATUS_TAG,
    RunInfo,
    Store,
    VersionInfo,
    dumps,
)

Confirm = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Proposal:
    version: int
    status: str
    run_id: str
    gates: list[Gate]
    champion: int | None
    existing: bool
    report: str

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "run_id": self.run_id,
            "gates": [g.to_json() for g in self.gates],
            "champion": self.champion,
            "existing": self.existing,
            "report": self.report,
        }


@dataclass(frozen=True)
class Transition:
    action: str
    version: int
    status: str
    champion: int | None
    previous: int | None
    event: audit.Event

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "version": self.version,
            "status": self.status,
            "champion": self.champion,
            "previous": self.previous,
            "event": {"seq": self.event.seq, "hash": self.event.hash},
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _number(v: VersionInfo | None) -> int | None:
    return v.version if v else None


# ---- propose ----------------------------------------------------------------------------------
def propose(store: Store, run_id: str, *, by: str | None = None, note: str = "") -> Proposal:
    """Register a run's model, evaluate the gates and record the outcome. Proposing the same
    run again returns the version it already has, unless that version was rejected."""
    check_text(note, "--note", MAX_NOTE)
    actor = store.actor(by)
    store.check_residency()
    lifecycle.check(store)  # never build on a registry that disagrees with the log
    run = store.runs.get_run(run_id)
    run_id = run.run_id  # a prefix was given: the full id from here on
    if run.status != "FINISHED":
        raise BadInput(
            f"run {run_id} is {run.status}; only FINISHED runs can be proposed (train again)"
        )
    existing = store.registry.version_for_run(run_id)
    if existing is not None and existing.status != Status.REJECTED:
        return _existing(store, existing)
    # A rejected version is closed: proposing its run again registers a new version, judged
    # against today's champion and policy (the way out of a stale or re-policied proposal).
    known = _number(existing)
    model = candidate.locate_model(store, run)
    with tempfile.TemporaryDirectory(prefix="magenta-propose-") as tmp:
        challenger_dir = store.runs.download_uri(model.source, Path(tmp) / "challenger")
        integrity.check_not_pickle(challenger_dir, model.label)
        files = integrity.manifest(challenger_dir)
        digest = integrity.manifest_digest(files)
        recorded = run.tags.get("magenta.model_manifest_sha256")
        if recorded and digest != recorded:
            raise IntegrityViolation(
                f"run {run_id}: model files differ from those recorded at "
                "training (SHA-256 mismatch); train again"
            )
        for _ in range(3):
            champion = store.registry.alias("champion")
            gates, evidence = evaluate_gates(store, run, challenger_dir, champion, Path(tmp))
            gates.append(
                Gate(
                    "sha256_manifest", True, f"{len(files)} files recorded, manifest {digest[:16]}"
                )
            )
            with release_lock(store):
                lifecycle.check_locked(store)
                newest = store.registry.version_for_run(run_id)
                raced = newest if _number(newest) != known else None
                moved = _number(store.registry.alias("champion")) != _number(champion)
                if raced is None and not moved:
                    proposal = _register(
                        store, run, model, actor, note, gates, evidence, files, champion
                    )
            if raced is None and not moved:
                # Outside the lock: a slow webhook must not hold up other releases.
                passed = proposal.status == Status.PENDING
                event = NotifyEvent.PROPOSED if passed else NotifyEvent.GATES_FAILED
                notify.announce(store, event, proposal.version, actor)
                return proposal
            if raced is not None:  # proposed meanwhile by another process
                return _existing(store, raced)
            # else the champion moved while we evaluated: evaluate again
    raise PolicyRefused("the champion kept changing while the gates ran; propose again")


def _register(
    store: Store,
    run: RunInfo,
    model: candidate.ModelRef,
    actor: str,
    note: str,
    gates: list[Gate],
    evidence: dict[str, Any],
    files: dict[str, str],
    champion: VersionInfo | None,
) -> Proposal:
    passed = all(g.passed for g in gates)
    status = Status.PENDING if passed else Status.FAILED
    digest = integrity.manifest_digest(files)
    evidence_doc = {
        "run_id": run.run_id,
        "gates": [g.to_json() for g in gates],
        "evidence": evidence,
        "champion": _number(champion),
        "policy_sha256": store.policy.sha256,
        "manifest_sha256": digest,
    }
    evidence_json = dumps(evidence_doc)
    evidence_sha = integrity.sha256_text(evidence_json)
    # One call creates the version with every tag: no version ever exists without a status.
    version = store.registry.create_version(
        run.run_id,
        model.source,
        model_id=model.model_id,
        tags={
            STATUS_TAG: status,
            "release.proposed_by": actor,
            "release.proposed_by_mlflow_user": store.whoami() or "",
            "release.proposed_at": _now(),
            "release.note": note,
            "release.passed_gates": str(passed).lower(),
            "release.baseline_version": str(_number(champion) or "none"),
            "release.manifest": json.dumps(files, sort_keys=True),
            "release.manifest_sha256": digest,
            "release.evidence": evidence_json,
            "release.evidence_sha256": evidence_sha,
            "release.dataset_sha256": run.dataset_sha256,
        },
    )
    faults.point("propose.after_create_version")
    audit.append(
        store,
        actor=actor,
        action="propose",
        version=version,
        status=status,
        champion_before=_number(champion),
        champion_after=_number(champion),
        reason=note,
        evidence_sha256=evidence_sha,
        manifest_sha256=digest,
        details={"run_id": run.run_id, "failed_gates": [g.name for g in gates if not g.passed]},
    )
    faults.point("propose.after_audit")
    lifecycle.sync(store)
    _log_what_the_gates_saw(store, run, model, evidence)
    report = _publish_report(store, store.registry.version(version), run)
    return Proposal(version, status, run.run_id, gates, _number(champion), False, report)


GATED_PREFIX = "gated."


def _log_what_the_gates_saw(
    store: Store, run: RunInfo, model: candidate.ModelRef, evidence: dict[str, Any]
) -> None:
    """The metrics propose recomputed, as `gated.*` model metrics of the run's logged model
    (when it has one) against its evaluation dataset, so the MLflow UI shows what the gates
    saw beside what the run logged about itself."""
    recomputed = evidence.get("metrics") or {}
    if not recomputed:
        return
    inputs = run.evaluation_inputs or run.inputs
    store.runs.log_model_metrics(
        run.run_id,
        {f"{GATED_PREFIX}{k}": v for k, v in recomputed.items()},
        model.model_id,
        inputs[0] if inputs else None,
    )


def _evidence(v: VersionInfo) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(v.tags.get("release.evidence", "{}"))
    except ValueError:
        return {}
    return doc


def _publish_report(store: Store, v: VersionInfo, run: RunInfo | None = None) -> str:
    """Write the release report (run artifacts + version description) from the version's tags;
    idempotent, so a rerun after an interruption completes it."""
    doc = _evidence(v)
    gates = [Gate(**g) for g in doc.get("gates", [])]
    run = run or store.runs.get_run(v.run_id)
    base = v.tags.get("release.baseline_version", "none")
    champion = store.registry.version(int(base)) if base.isdigit() else None
    report = release_report(
        store,
        run,
        v.version,
        v.status,
        v.tags.get("release.proposed_by", "?"),
        v.tags.get("release.note", ""),
        gates,
        doc.get("evidence", {}),
        champion,
    )
    with tempfile.TemporaryDirectory(prefix="magenta-report-") as tmp:
        folder = Path(tmp)
        (folder / "report.md").write_text(report)
        (folder / "gates.json").write_text(json.dumps(doc, indent=1, default=str))
        card.attach(store, v.version, folder)
        store.runs.log_artifacts(run.run_id, folder, "release")
    store.registry.set_description(v.version, report)
    return report


def _existing(store: Store, v: VersionInfo) -> Proposal:
    """The proposal a run already has; completes one an interrupted command left behind."""
    with release_lock(store):
        lifecycle.check_locked(store)
        v = store.registry.version(v.version)
        report = ""
        if not store.registry.description(v.version):
            report = _publish_report(store, v)
    gates = [Gate(**g) for g in _evidence(v).get("gates", [])]
    baseline = v.tags.get("release.baseline_version", "none")
    return Proposal(
        v.version,
        v.status,
        v.run_id,
        gates,
        int(baseline) if baseline.isdigit() else None,
        True,
        report,
    )


def evaluate_gates(
    store: Store, run: RunInfo, challenger_dir: Path, champion: VersionInfo | None, tmp: Path
) -> tuple[list[Gate], dict[str, Any]]:
    """Every gate of the policy for one candidate against the current champion. The
    challenger's evaluation rows are re-read from their source and checked against what the
    run recorded; both models are scored on exactly those rows, and the run's own metrics are
    only compared, never used."""
    policy = store.policy
    challenger = model_files.inspect(challenger_dir, f"run {run.run_id}")
    evidence: dict[str, Any] = {
        "logged_metrics": {k: run.metrics[k] for k in sorted(run.metrics)},
        "dataset_sha256": run.dataset_sha256,
        "eval_sha256": run.tags.get("magenta.eval_sha256"),
    }
    rows = candidate.evaluation_rows(store, run)
    champ = (
        model_files.fetch_verified(store, champion, tmp / f"champion-{champion.version}")
        if champion
        else None
    )
    base = [Gate("skops_format", True, "serialization_format: skops, no pickle files")]
    base += input_gates(policy, challenger.all_inputs, champ.all_inputs if champ else None)
    if isinstance(rows, str):
        return [
            *metric_gates(policy, {}),
            *base,
            Gate("metrics_reproducible", False, f"cannot re-score: {rows}"),
            Gate("no_regression", False, f"cannot re-score: {rows}"),
        ], evidence
    evidence["source"] = rows.source
    x = candidate.model_frame(rows.frame, challenger.all_inputs, "challenger", policy.data)
    ours = model_files.score(challenger.model, x)
    recomputed = evaluate.metrics(rows.y, ours, run.metrics.get("threshold", 0.5))
    evidence["metrics"] = recomputed
    gates = [*metric_gates(policy, recomputed), *base]
    gates.append(reproducible_gate(policy, run.metrics, recomputed))
    if champ is None or champion is None:
        gates.append(Gate("no_regression", True, "no champion yet: nothing to regress against"))
        extra, evidence["card"] = card.assess(store, run, rows.frame, rows.y, ours)
        return [*gates, *extra], evidence
    try:
        x_champion = candidate.model_frame(rows.frame, champ.all_inputs, "champion", policy.data)
    except BadInput as exc:
        gates.append(Gate("no_regression", False, f"cannot score the champion: {exc}"))
        return gates, evidence
    theirs = model_files.score(champ.model, x_champion)
    reg, reg_evidence = regression_gates(policy, rows.y, ours, theirs, champion.version)
    evidence["rescored"] = reg_evidence
    worth, evidence["value"] = value_gate(policy, rows.y, ours, theirs)
    extra, evidence["card"] = card.assess(store, run, rows.frame, rows.y, ours, champion, theirs)
    return [*gates, *reg, worth, *extra], evidence


def _eval_input_digest(run: RunInfo) -> str:
    """MLflow's digest of a team run's evaluation input (what the gates checked)."""
    found = run.evaluation_inputs
    return f"MLflow digest {found[0].digest}" if found else "?"


def release_report(
    store: Store,
    run: RunInfo,
    version: int,
    status: str,
    actor: str,
    note: str,
    gates: list[Gate],
    evidence: dict[str, Any],
    champion: VersionInfo | None,
) -> str:
    """The markdown release report: metrics vs champion, gates, data, lineage."""
    lines = [
        # No live status here: it changes after the report is written (`show` prints it).
        f"# {store.name} v{version}: release report "
        f"({'gates passed' if status != Status.FAILED else 'gates failed'})",
        "",
        f"- proposed by **{actor}** at {_now()}" + (f": {note}" if note else ""),
        f"- run `{run.run_id}` ({run.name}), "
        f"code `{run.tags.get('mlflow.source.git.commit', '?')}`",
        f"- data `{run.dataset_sha256 or 'evaluation input'}` from "
        f"`{run.tags.get('magenta.data_source') or evidence.get('source', '?')}`",
        f"- evaluation rows `{run.tags.get('magenta.eval_sha256') or _eval_input_digest(run)}`",
        f"- policy `{store.policy.sha256}`",
        f"- champion at proposal: {'v' + str(champion.version) if champion else 'none'}",
        "",
        "## Gates",
        "",
        markdown([g.to_json() for g in gates]),
    ]
    rescored = evidence.get("rescored")
    if rescored:
        lines += [
            "",
            f"## Challenger vs champion on the same {rescored['rows']:,} rows",
            "",
            "| metric | challenger | champion | Δ |",
            "| --- | --- | --- | --- |",
        ]
        for m in REPORTED_METRICS:
            a, b = rescored["challenger"][m], rescored["champion"][m]
            lines.append(f"| {m} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    else:
        lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {m} | {v:.4f} |" for m, v in sorted(run.metrics.items())]
    return "\n".join(lines) + "\n"


# ---- approve / reject / rollback ----------------------------------------------------------------
# One documented limit per field (docs/reliability.md): every audit event must fit the store's
# tag limit (5,000 characters on PostgreSQL), checked before anything is written.
MAX_REASON, MAX_NOTE = 1000, 1000


def check_text(value: str, flag: str, limit: int) -> str:
    """Free text people type: at most `limit` characters, no control characters (newlines
    and tabs allowed); BadInput otherwise, before any write."""
    if len(value) > limit:
        raise BadInput(f"{flag} is {len(value):,} characters; keep it under {limit:,}")
    if any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in value):
        raise BadInput(f"{flag} contains control characters (escape sequences?); type plain text")
    return value


def _require_reason(reason: str, why: str) -> None:
    check_text(reason, "--reason", MAX_REASON)
    if not reason.strip():
        raise BadInput(f"--reason is empty; say why {why}")


def _is_approver(store: Store, actor: str) -> bool:
    return any(identity.same(actor, a) for a in store.policy.approval.approvers)


def _require_approver(store: Store, actor: str, action: str) -> None:
    if not _is_approver(store, actor):
        approvers = store.policy.approval.approvers
        raise PolicyRefused(
            f"{actor} may not {action}: not in `approvers` under [approval] of the release "
            f"policy of {store.name} ({', '.join(approvers)}); ask one of them, or have a "
            "policy owner add the person (magenta-release policy set)"
        )


def _require_permission(store: Store, actor: str, action: str, enough: tuple[str, ...]) -> None:
    """Before the write-ahead event: a decision the server would not let the actor carry out
    (moving and clearing aliases) is refused while nothing is written, never half-applied."""
    permission = store.model_permission()
    if permission is not None and permission not in enough:
        raise PolicyRefused(
            f"{actor} may {action} under the policy but has {permission} on {store.name} in "
            f"MLflow; moving its aliases needs {' or '.join(enough)}: ask an MLflow admin to "
            "grant it (nothing was written)"
        )


def _same_person(a: str | None, b: str | None) -> bool:
    return bool(a and b) and identity.same(str(a), str(b))


def _check_approvable(store: Store, v: VersionInfo, actor: str) -> None:
    if v.status != Status.PENDING:
        raise PolicyRefused(
            f"version {v.version} is {v.status or 'not proposed'}; only "
            f"{Status.PENDING} versions can be approved (see: magenta-release history)"
        )
    _check_not_expired(store, v)
    _require_approver(store, actor, "approve")
    proposers = (v.tags.get("release.proposed_by"), v.tags.get("release.proposed_by_mlflow_user"))
    if store.policy.approval.four_eyes and any(_same_person(actor, p) for p in proposers):
        raise PolicyRefused(
            f"{actor} proposed version {v.version} and cannot approve it too "
            "(four eyes); ask another approver"
        )
    champion = store.registry.alias("champion")
    baseline = v.tags.get("release.baseline_version", "none")
    if str(_number(champion) or "none") != baseline:
        raise PolicyRefused(
            f"version {v.version} was compared against champion {baseline}, but the champion is "
            f"now {_number(champion)}; the proposal is stale — reject it "
            f"(magenta-release reject {v.version} --reason stale), then propose its run again"
        )
    proposed_under = str(_evidence(v).get("policy_sha256", ""))
    if proposed_under != store.policy.sha256:
        raise PolicyRefused(
            f"version {v.version} was proposed under policy {proposed_under[:12] or '?'}, but "
            f"the policy of {store.name} is now {store.policy.sha256[:12]} (magenta-release "
            f"policy history); re-propose: reject it (magenta-release reject {v.version} "
            "--reason 'policy changed'), then propose its run again"
        )


def approval_summary(store: Store, v: VersionInfo) -> dict[str, Any]:
    """What an approver sees before confirming (from the evidence recorded at proposal)."""
    doc = _evidence(v)
    return {
        "model": store.name,
        "version": v.version,
        "run_id": v.run_id,
        "proposed_by": v.tags.get("release.proposed_by"),
        "note": v.tags.get("release.note", ""),
        "champion": _number(store.registry.alias("champion")),
        "gates": doc.get("gates", []),
        "rescored": doc.get("evidence", {}).get("rescored"),
    }


def _already(store: Store, action: str, version: int, actor: str) -> Transition | None:
    """The event of this very action by this actor if it is the latest champion move: a rerun
    after an interruption (or a double click) then reports it instead of failing."""
    log = audit.events(store)
    moves = [e for e in log if e.action in {"approve", "rollback"}]
    if (
        moves
        and moves[-1].action == action
        and moves[-1].version == version
        and moves[-1].actor == actor
    ):
        state = lifecycle.expected_state(log)
        return Transition(
            action, version, Status.APPROVED, state.champion, state.previous, moves[-1]
        )
    return None


def approve(
    store: Store,
    version: int | str,
    *,
    reason: str,
    by: str | None = None,
    confirm: Confirm | None = None,
) -> Transition:
    """Make a pending version the champion (four eyes, hashes re-checked, not stale)."""
    actor = store.actor(by)
    _require_reason(reason, "this version should be released")
    store.check_residency()
    lifecycle.check(store)  # never build on a registry that disagrees with the log
    v = store.registry.version(version)
    if v.status == Status.APPROVED and (done := _already(store, "approve", v.version, actor)):
        return done
    _check_approvable(store, v, actor)
    if confirm is not None and not confirm(approval_summary(store, v)):
        raise PolicyRefused(
            f"version {v.version} not approved: confirmation declined (without a terminal, "
            "confirm with --yes)"
        )
    with release_lock(store), tempfile.TemporaryDirectory(prefix="magenta-approve-") as tmp:
        lifecycle.check_locked(store)
        v = store.registry.version(version)
        if v.status == Status.APPROVED and (done := _already(store, "approve", v.version, actor)):
            return done
        _check_approvable(store, v, actor)  # again, inside the lock: exactly one approval wins
        _require_permission(store, actor, "approve", ("MANAGE",))
        model_files.fetch_verified(store, v, Path(tmp))
        old = store.registry.alias("champion")
        # The event first: it is the decision; the registry (status, aliases, who approved)
        # follows it in `sync`, so a failed write leaves no tag saying otherwise.
        event = audit.append(
            store,
            actor=actor,
            action="approve",
            version=v.version,
            status=Status.APPROVED,
            champion_before=_number(old),
            champion_after=v.version,
            reason=reason,
            evidence_sha256=v.tags.get("release.evidence_sha256", ""),
            manifest_sha256=v.tags.get("release.manifest_sha256", ""),
        )
        faults.point("approve.after_audit")
        lifecycle.sync(store)
    notify.announce(store, NotifyEvent.APPROVED, v.version, actor, champion_before=_number(old))
    return Transition("approve", v.version, Status.APPROVED, v.version, _number(old), event)


def _check_rejectable(store: Store, v: VersionInfo, actor: str) -> None:
    if v.status != Status.PENDING:
        raise PolicyRefused(
            f"version {v.version} is {v.status or 'not proposed'}; only "
            f"{Status.PENDING} versions can be rejected"
        )
    if not _is_approver(store, actor) and not _same_person(
        actor, v.tags.get("release.proposed_by")
    ):
        raise PolicyRefused(
            f"{actor} may not reject version {v.version}: only an approver or its proposer can"
        )


def reject(store: Store, version: int | str, *, reason: str, by: str | None = None) -> Transition:
    """Turn down a pending proposal (an approver, or its proposer withdrawing it)."""
    actor = store.actor(by)
    _require_reason(reason, "this version is rejected")
    store.check_residency()
    lifecycle.check(store)  # never build on a registry that disagrees with the log
    _check_rejectable(
        store, store.registry.version(version), actor
    )  # refuse before taking the lock
    with release_lock(store):
        lifecycle.check_locked(store)
        v = store.registry.version(version)
        _check_rejectable(store, v, actor)
        _require_permission(store, actor, "reject", ("MANAGE",))
        champion = _number(store.registry.alias("champion"))
        event = audit.append(
            store,
            actor=actor,
            action="reject",
            version=v.version,
            status=Status.REJECTED,
            champion_before=champion,
            champion_after=champion,
            reason=reason,
            evidence_sha256=v.tags.get("release.evidence_sha256", ""),
            manifest_sha256=v.tags.get("release.manifest_sha256", ""),
        )
        lifecycle.sync(store)
    notify.announce(store, NotifyEvent.REJECTED, v.version, actor)
    return Transition(
        "reject",
        v.version,
        Status.REJECTED,
        champion,
        _number(store.registry.alias("previous")),
        event,
    )


def _rollback_target(store: Store, to: int | str | None) -> tuple[VersionInfo, VersionInfo]:
    champion = store.registry.alias("champion")
    if champion is None:
        raise PolicyRefused("there is no @champion to roll back")
    if to is None:
        target = store.registry.alias("previous")
        if target is None:
            raise PolicyRefused(
                "no @previous version to roll back to; name one that was approved once "
                "with --to VERSION (see: magenta-release status)"
            )
    else:
        target = store.registry.version(to)
    if target.version == champion.version:
        raise PolicyRefused(f"version {target.version} is already the champion")
    if target.tags.get("release.passed_gates") != "true" or target.status not in {
        Status.APPROVED,
        Status.RETIRED,
        Status.ROLLED_BACK,
    }:
        raise PolicyRefused(
            f"version {target.version} is {target.status or 'not proposed'}; roll back only to "
            "a version that passed its gates and was approved once (approved, retired or "
            "rolled_back)"
        )
    return champion, target


def rollback(
    store: Store,
    *,
    reason: str,
    to: int | str | None = None,
    by: str | None = None,
    confirm: Confirm | None = None,
) -> Transition:
    """Move @champion back to @previous (or to a version that once passed its gates)."""
    actor = store.actor(by)
    _require_reason(reason, "the champion is rolled back")
    store.check_residency()
    lifecycle.check(store)  # never build on a registry that disagrees with the log
    _require_approver(store, actor, "roll back")
    current = store.registry.alias("champion")
    if current is not None and (to is None or str(to) == str(current.version)):
        done = _already(store, "rollback", current.version, actor)
        if done is not None:  # a rerun of the rollback that already happened
            return done
    champion, target = _rollback_target(store, to)
    if confirm is not None and not confirm(
        {"model": store.name, "champion": champion.version, "target": target.version}
    ):
        raise PolicyRefused(
            "rollback not done: confirmation declined (without a terminal, confirm with --yes)"
        )
    with release_lock(store), tempfile.TemporaryDirectory(prefix="magenta-rollback-") as tmp:
        lifecycle.check_locked(store)
        now_champion, now_target = _rollback_target(store, to)
        if (now_champion.version, now_target.version) != (champion.version, target.version):
            raise PolicyRefused(
                f"the champion changed to {now_champion.version} meanwhile; "
                "check `magenta-release status` and roll back again"
            )
        model_files.fetch_verified(store, target, Path(tmp))
        _require_permission(store, actor, "roll back", ("EDIT", "MANAGE"))
        event = audit.append(
            store,
            actor=actor,
            action="rollback",
            version=target.version,
            status=Status.APPROVED,
            champion_before=champion.version,
            champion_after=target.version,
            reason=reason,
            evidence_sha256=target.tags.get("release.evidence_sha256", ""),
            manifest_sha256=target.tags.get("release.manifest_sha256", ""),
        )
        faults.point("rollback.after_audit")
        lifecycle.sync(store)
    notify.announce(
        store, NotifyEvent.ROLLED_BACK, target.version, actor, champion_before=champion.version
    )
    return Transition(
        "rollback", target.version, Status.APPROVED, target.version, champion.version, event
    )


# ---- status / history ---------------------------------------------------------------------------
def status(store: Store) -> dict[str, Any]:
    """Champion, challenger, previous and pending versions (with their age). Reads only: an
    alias or status that disagrees with the audit log raises an IntegrityAlert (exit 3)."""
    from magenta_release.repair import dead_runs

    lifecycle.check(store)
    versions = store.registry.versions()
    by_alias = {a: v for v in versions for a in v.aliases}
    now = datetime.now(UTC)

    def doc(v: VersionInfo | None) -> dict[str, Any] | None:
        return v.to_json() if v else None

    def pending(v: VersionInfo) -> dict[str, Any]:
        age = proposal_age_days(v, now)
        return {
            **v.to_json(),
            "age_days": None if age is None else round(age, 1),
            "expired": _expired(store, age),
        }

    return {
        "registered_model": store.name,
        "champion": doc(by_alias.get("champion")),
        "challenger": doc(by_alias.get("challenger")),
        "previous": doc(by_alias.get("previous")),
        "pending": [pending(v) for v in versions if v.status == Status.PENDING],
        "versions": [v.to_json() for v in versions],
        "dead_runs": dead_runs(store),
        "notify_failures": notify.failures(versions),
        "identity_verified": store.whoami() is not None,
    }


def show(store: Store, version: int | str) -> dict[str, Any]:
    """One version as an approver needs it: live status and aliases, the gate table and the
    evidence recorded at proposal, the release report, and where its plots are. Reads only."""
    v = store.registry.version(version)
    doc = _evidence(v)
    run = store.runs.get_run(v.run_id)
    plots = [
        p for p in store.runs.artifact_paths(run.run_id, "plots", depth=1) if p.endswith(".png")
    ]
    if store.settings.is_local:
        where = [f"{run.artifact_uri.removeprefix('file://')}/{p}" for p in plots]
    else:
        base = store.tracking_uri.rstrip("/")
        link = f"{base}/#/experiments/{store.runs.experiment_id()}/runs/{run.run_id}/artifacts"
        where = [f"{link}/{p}" for p in plots]
    return {
        **v.to_json(),
        "registered_model": store.name,
        "note": v.tags.get("release.note", ""),
        "proposed_at": v.tags.get("release.proposed_at"),
        "baseline_version": v.tags.get("release.baseline_version"),
        "gates": doc.get("gates", []),
        "evidence": doc.get("evidence", {}),
        "report": store.registry.description(v.version),
        "plots": where,
    }


def history(store: Store, limit: int = 20) -> list[audit.Event]:
    """The newest `limit` audit events, newest first."""
    if not 1 <= limit <= 100_000:
        raise BadInput(f"--limit {limit} is out of range; use 1 to 100000")
    return list(reversed(audit.events(store)))[:limit]


# ---- approval expiry and reminders ---------------------------------------------------------
def proposal_age_days(v: VersionInfo, now: datetime | None = None) -> float | None:
    """Days since the version was proposed (None if its `release.proposed_at` is unreadable)."""
    try:
        proposed = datetime.fromisoformat(v.tags.get("release.proposed_at", ""))
    except ValueError:
        return None
    if proposed.tzinfo is None:
        return None
    return ((now or datetime.now(UTC)) - proposed).total_seconds() / 86400


def _expired(store: Store, age: float | None) -> bool:
    # An unreadable age cannot prove the evidence is fresh: treat it as expired.
    return age is None or age >= store.policy.approval.expires_after_days


def _check_not_expired(store: Store, v: VersionInfo) -> None:
    age = proposal_age_days(v)
    if _expired(store, age):
        limit = store.policy.approval.expires_after_days
        when = "at an unreadable time" if age is None else f"{age:.1f} days ago"
        raise PolicyRefused(
            f"version {v.version} was proposed {when} and expired after {limit:g} days "
            f"(`expires_after_days` under [approval] of the policy of {store.name}); "
            f"reject it (magenta-release reject {v.version} --reason expired), then propose its "
            "run again"
        )


@dataclass(frozen=True)
class Reminder:
    version: int
    age_days: float | None
    expired: bool
    delivered: bool | None  # None: no webhook subscribes to reminders

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "age_days": None if self.age_days is None else round(self.age_days, 1),
            "expired": self.expired,
            "delivered": self.delivered,
        }


def remind(store: Store, *, by: str | None = None) -> list[Reminder]:
    """Send one reminder per version waiting for approval longer than `remind_after_days`
    (policy [approval]); expired ones say so. The Dagster code location runs this daily."""
    actor = store.actor(by)
    store.check_residency()  # it records each delivery as a version tag
    now = datetime.now(UTC)
    sent = []
    for v in sorted(store.registry.versions(), key=lambda v: v.version):
        age = proposal_age_days(v, now)
        if v.status != Status.PENDING or (
            age is not None and age < store.policy.approval.remind_after_days
        ):
            continue
        expired = _expired(store, age)
        facts = (
            "waiting " + ("for an unknown time" if age is None else f"{age:.1f} days"),
            "EXPIRED: it can no longer be approved; reject it and propose a new run"
            if expired
            else f"expires after {store.policy.approval.expires_after_days:g} days",
        )
        # An expired version can only be rejected: say so rather than suggest a doomed approve.
        commands = (
            (f"magenta-release reject {v.version} --model {store.name} --reason expired",)
            if expired
            else None
        )
        outcome = notify.announce(
            store, NotifyEvent.REMINDER, v.version, actor, facts=facts, commands=commands
        )
        sent.append(Reminder(v.version, age, expired, None if outcome is None else outcome.ok))
    return sent
