"""`propose`: register a run's model, evaluate the gates, record the outcome.

The gates run outside the release lock (they take seconds to minutes); the registration runs
inside it after reading the log again, and is refused (evaluated again) when the champion
moved meanwhile. So propose reads the log twice: once to check the store before the slow part,
once under the lock.

In server mode the gates run the same way on the proposer's machine, and the registration is
the server's release authority's (`magenta_release.server.authority`): it copies the model
files to where only it writes, creates the version with `register` below and refuses (stale:
evaluate again) when the champion or the policy moved. The approver's machine re-computes the
gates before approving, so what a proposer's machine claims is checked by a second one."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import candidate, cards, evaluation, lifecycle, notify
from magenta_release.core import faults, integrity, keys
from magenta_release.core.errors import (
    BadInput,
    IntegrityViolation,
    PolicyRefused,
    Stale,
    StoreUnreachable,
)
from magenta_release.core.evidence import Evidence
from magenta_release.core.gates import Gate
from magenta_release.core.limits import MAX_NOTE, check_text
from magenta_release.core.policy import NotifyEvent
from magenta_release.core.records import RunInfo, VersionInfo
from magenta_release.core.report import release_report
from magenta_release.core.states import Action, Status
from magenta_release.io import authority as release_authority
from magenta_release.io.lock import release_lock

GATED_PREFIX = "gated."


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

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Proposal:
        """A proposal as the release authority answered it."""
        try:
            return cls(
                int(doc["version"]),
                str(doc["status"]),
                str(doc["run_id"]),
                [Gate(**g) for g in doc.get("gates") or []],
                doc.get("champion"),
                bool(doc.get("existing")),
                str(doc.get("report") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreUnreachable(
                f"the release authority answered something that is not a proposal ({exc})"
            ) from exc


def _number(v: VersionInfo | None) -> int | None:
    return v.version if v else None


# A run whose version is closed this way may be proposed again (as a new version).
REPROPOSABLE = frozenset({Status.REJECTED, Status.FAILED})


# The facts of an evidence that name what the gates read: the run's training data and its
# evaluation rows (their recorded digests), and where the rows were read from (absent when
# they could not be read: a table rebuilt since training, restored later, is judged anew).
INPUTS = ("dataset_sha256", "eval_sha256", "source")


def judged_alike(before: Evidence, now: Evidence) -> bool:
    """A gates_failed version judged again on the same inputs: same policy, champion, model
    files and inputs, and each gate with the same outcome. Proposing it again would only
    repeat the failure, so the existing version is the answer. A gate's detail text is not
    compared: in server mode it is whatever the caller sends, and a changed detail must not
    make a new version."""
    return (
        before.policy_sha256 == now.policy_sha256
        and before.champion == now.champion
        and before.manifest_sha256 == now.manifest_sha256
        and all(before.facts.get(k) == now.facts.get(k) for k in INPUTS)
        and [(g.name, g.passed) for g in before.gates] == [(g.name, g.passed) for g in now.gates]
    )


def propose(ctx: Context, run_id: str, *, note: str = "") -> Proposal:
    """Register a run's model, evaluate the gates and record the outcome. Proposing the same
    run again returns the version it already has, unless that version was rejected, or failed
    its gates and would now be judged otherwise (the policy, the champion or the data changed):
    then the run is proposed again as a new version."""
    check_text(note, "--note", MAX_NOTE)
    actor = ctx.actor
    ctx.check_residency()
    lifecycle.check(ctx)  # never build on a registry that disagrees with the log
    run = ctx.runs.get_run(run_id)
    run_id = run.run_id  # a prefix was given: the full id from here on
    if run.status != "FINISHED":
        raise BadInput(
            f"run {run_id} is {run.status}; only FINISHED runs can be proposed (train again)"
        )
    existing = ctx.registry.version_for_run(run_id)
    authority = ctx.authority
    if existing is not None and existing.status not in REPROPOSABLE:
        return _existing(ctx, existing) if authority is None else existing_proposal(existing)
    # A rejected or gates_failed version is closed: proposing its run again registers a new
    # version, judged against today's champion, policy and data (the way out of a stale or
    # re-policied proposal, or of a table restored after a rebuild). The audit log counts
    # only a version's first propose event, so a re-proposal is always a new version.
    known = _number(existing)
    model = candidate.locate_model(ctx.runs, run)
    with tempfile.TemporaryDirectory(prefix="magenta-propose-") as tmp:
        challenger_dir = ctx.runs.download_uri(model.source, Path(tmp) / "challenger")
        integrity.check_not_pickle(challenger_dir, model.label)
        files = integrity.manifest(challenger_dir)
        digest = integrity.manifest_digest(files)
        recorded = run.tags.get(keys.RUN_MODEL_MANIFEST_SHA256)
        if recorded and digest != recorded:
            raise IntegrityViolation(
                f"run {run_id}: model files differ from those recorded at "
                "training (SHA-256 mismatch); train again"
            )
        for _ in range(3):
            champion = ctx.registry.alias("champion")
            gates, facts = evaluation.evaluate(ctx, run, challenger_dir, champion, Path(tmp))
            gates.append(
                Gate(
                    "sha256_manifest", True, f"{len(files)} files recorded, manifest {digest[:16]}"
                )
            )
            evidence = Evidence(
                run.run_id, tuple(gates), facts, _number(champion), ctx.policy.sha256, digest
            )
            if (
                existing is not None
                and existing.status == Status.FAILED
                and judged_alike(Evidence.of(existing), evidence)
            ):  # failed before, and nothing changed since
                return (
                    _existing(ctx, existing) if authority is None else existing_proposal(existing)
                )
            done = (
                _ask(ctx, authority, run, model, evidence, note)
                if authority is not None
                else _register_locked(ctx, run, model, actor, note, evidence, files, known)
            )
            if done is not None:
                if not done.existing:
                    # Outside the lock: a slow webhook must not hold up other releases.
                    _announce(ctx, done, actor)
                return done
            # else the champion or the policy moved while we evaluated: evaluate again
    raise PolicyRefused("the champion kept changing while the gates ran; propose again")


def _register_locked(
    ctx: Context,
    run: RunInfo,
    model: candidate.ModelRef,
    actor: str,
    note: str,
    evidence: Evidence,
    files: dict[str, str],
    known: int | None,
) -> Proposal | None:
    """Under the release lock, with the log read again: the new proposal, the version another
    process registered for the run meanwhile, or None when the champion or the policy moved
    while the gates ran (evaluate again)."""
    with release_lock(ctx.store, ctx.model):
        ctx.reread()
        lifecycle.check_locked(ctx)
        newest = ctx.registry.version_for_run(run.run_id)
        raced = newest if _number(newest) != known else None
        moved = _number(ctx.registry.alias("champion")) != evidence.champion or (
            ctx.policy.sha256 != evidence.policy_sha256
        )
        if raced is None and not moved:
            return _register(ctx, run, model, actor, note, evidence, files, known)
    if raced is not None:  # proposed meanwhile by another process
        return _existing(ctx, raced)
    return None


def _ask(
    ctx: Context,
    authority: release_authority.Authority,
    run: RunInfo,
    model: candidate.ModelRef,
    evidence: Evidence,
    note: str,
) -> Proposal | None:
    """Server mode: the release authority registers the proposal (None: stale, evaluate
    again); the run then gains its report, card and gated metrics as in embedded mode."""
    try:
        done = Proposal.from_json(
            authority.propose(
                ctx.model,
                run_id=run.run_id,
                source=model.source,
                model_id=model.model_id,
                evidence=evidence.dumps(),
                note=note,
            )
        )
    except Stale:
        return None
    if not done.existing:
        _after_registration(ctx, run, model, evidence, done.version, describe=False)
    return done


def _announce(ctx: Context, proposal: Proposal, actor: str) -> None:
    passed = proposal.status == Status.PENDING
    event = NotifyEvent.PROPOSED if passed else NotifyEvent.GATES_FAILED
    notify.announce(ctx, event, proposal.version, actor)


def _register(
    ctx: Context,
    run: RunInfo,
    model: candidate.ModelRef,
    actor: str,
    note: str,
    evidence: Evidence,
    files: dict[str, str],
    earlier: int | None = None,
) -> Proposal:
    version = register(ctx, run, model, actor, note, evidence, files, earlier)
    report = _after_registration(ctx, run, model, evidence, version, describe=True)
    status = Status.PENDING if evidence.passed else Status.FAILED
    return Proposal(
        version, status, run.run_id, list(evidence.gates), evidence.champion, False, report
    )


def register(
    ctx: Context,
    run: RunInfo,
    model: candidate.ModelRef,
    actor: str,
    note: str,
    evidence: Evidence,
    files: dict[str, str],
    earlier: int | None = None,
) -> int:
    """Create the version (every tag in the one call), write its propose event (naming the
    version of the same run it follows, if any), let the registry follow; under the release
    lock, after the gates. The embedded store runs it in the proposer's process, a server's
    release authority with the files it copied."""
    passed = evidence.passed
    status = Status.PENDING if passed else Status.FAILED
    evidence_json = evidence.dumps()
    # One call creates the version with every tag: no version ever exists without a status.
    version = ctx.registry.create_version(
        run.run_id,
        model.source,
        model_id=model.model_id,
        tags={
            keys.STATUS: status,
            keys.PROPOSED_BY: actor,
            keys.PROPOSED_BY_MLFLOW_USER: ctx.store.whoami() or "",
            keys.PROPOSED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
            keys.NOTE: note,
            keys.PASSED_GATES: str(passed).lower(),
            keys.BASELINE_VERSION: str(evidence.champion or "none"),
            keys.MANIFEST: json.dumps(files, sort_keys=True),
            keys.MANIFEST_SHA256: evidence.manifest_sha256,
            keys.EVIDENCE: evidence_json,
            keys.EVIDENCE_SHA256: evidence.sha256,
            keys.DATASET_SHA256: run.dataset_sha256,
        },
    )
    faults.point("propose.after_create_version")
    ctx.record(
        actor=actor,
        action=Action.PROPOSE,
        version=version,
        status=status,
        champion_before=evidence.champion,
        champion_after=evidence.champion,
        reason=note,
        evidence_sha256=evidence.sha256,
        manifest_sha256=evidence.manifest_sha256,
        details={
            "run_id": run.run_id,
            "failed_gates": evidence.failed_gates,
            **({"proposed_again_after": earlier} if earlier is not None else {}),
        },
    )
    faults.point("propose.after_audit")
    lifecycle.sync(ctx)
    return version


def _after_registration(
    ctx: Context,
    run: RunInfo,
    model: candidate.ModelRef,
    evidence: Evidence,
    version: int,
    *,
    describe: bool,
) -> str:
    """What the run gains from its proposal (the gated metrics, the report and the card as
    run artifacts); with `describe`, the report as the version's description too (in server
    mode the authority writes that)."""
    _log_what_the_gates_saw(ctx, run, model, evidence)
    return publish_report(ctx, ctx.registry.version(version), run, describe=describe)


def _log_what_the_gates_saw(
    ctx: Context, run: RunInfo, model: candidate.ModelRef, evidence: Evidence
) -> None:
    """The metrics propose recomputed, as `gated.*` model metrics of the run's logged model
    (when it has one) against its evaluation dataset, so the MLflow UI shows what the gates
    saw beside what the run logged about itself."""
    recomputed = evidence.metrics
    if not recomputed:
        return
    inputs = run.evaluation_inputs or run.inputs
    ctx.runs.log_model_metrics(
        run.run_id,
        {f"{GATED_PREFIX}{k}": v for k, v in recomputed.items()},
        model.model_id,
        inputs[0] if inputs else None,
    )


def report_text(model: str, v: VersionInfo, run: RunInfo) -> str:
    """The release report of version `v` (of registered model `model`), from its tags."""
    base = v.tags.get(keys.BASELINE_VERSION, "none")
    return release_report(
        model,
        run,
        v.version,
        v.status,
        v.tags.get(keys.PROPOSED_BY, "?"),
        v.tags.get(keys.NOTE, ""),
        Evidence.of(v),
        int(base) if base.isdigit() else None,
    )


def publish_report(
    ctx: Context, v: VersionInfo, run: RunInfo | None = None, *, describe: bool = True
) -> str:
    """Write the release report (run artifacts, and with `describe` the version description)
    from the version's tags; idempotent, so a rerun after an interruption completes it."""
    doc = Evidence.of(v)
    run = run or ctx.runs.get_run(v.run_id)
    report = report_text(ctx.model, v, run)
    with tempfile.TemporaryDirectory(prefix="magenta-report-") as tmp:
        folder = Path(tmp)
        (folder / "report.md").write_text(report)
        (folder / "gates.json").write_text(json.dumps(doc.to_json(), indent=1, default=str))
        cards.attach(ctx, v, folder)
        ctx.runs.log_artifacts(run.run_id, folder, "release")
    if describe:
        ctx.registry.set_description(v.version, report)
    return report


def _existing(ctx: Context, v: VersionInfo) -> Proposal:
    """The proposal a run already has; completes one an interrupted command left behind."""
    with release_lock(ctx.store, ctx.model):
        ctx.reread()
        lifecycle.check_locked(ctx)
        v = ctx.registry.version(v.version)
        report = ""
        if not ctx.registry.description(v.version):
            report = publish_report(ctx, v)
    return existing_proposal(v, report)


def existing_proposal(v: VersionInfo, report: str = "") -> Proposal:
    """The proposal a version records (what proposing its run again answers)."""
    baseline = v.tags.get(keys.BASELINE_VERSION, "none")
    return Proposal(
        v.version,
        v.status,
        v.run_id,
        list(Evidence.of(v).gates),
        int(baseline) if baseline.isdigit() else None,
        True,
        report,
    )
