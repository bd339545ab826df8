"""`status`, `show`, `history`, `audit verify`: what the release process looks like now. Reads
only: an alias or status that disagrees with the audit log is an IntegrityAlert (exit 3), never
a repair."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from magenta_release.app.context import Context
from magenta_release.app.services import lifecycle, notify
from magenta_release.app.services.runs import dead_runs
from magenta_release.core import decisions, keys
from magenta_release.core.audit import Event, Verification
from magenta_release.core.errors import BadInput, IntegrityViolation
from magenta_release.core.evidence import Evidence
from magenta_release.core.records import VersionInfo
from magenta_release.core.states import Action, Status


def status(ctx: Context) -> dict[str, Any]:
    """Champion, challenger, previous and pending versions (with their age)."""
    versions = lifecycle.check(ctx)
    by_alias = {a: v for v in versions for a in v.aliases}
    now = datetime.now(UTC)
    approval = ctx.policy.approval

    def doc(v: VersionInfo | None) -> dict[str, Any] | None:
        return v.to_json() if v else None

    def pending(v: VersionInfo) -> dict[str, Any]:
        age = decisions.proposal_age_days(v, now)
        return {
            **v.to_json(),
            "age_days": None if age is None else round(age, 1),
            "expired": decisions.expired(approval, age),
        }

    return {
        "registered_model": ctx.model,
        "champion": doc(by_alias.get("champion")),
        "challenger": doc(by_alias.get("challenger")),
        "previous": doc(by_alias.get("previous")),
        "pending": [pending(v) for v in versions if v.status == Status.PENDING],
        "versions": [v.to_json() for v in versions],
        "dead_runs": dead_runs(ctx.runs),
        "notify_failures": notify.failures(versions),
        "identity_verified": ctx.store.whoami() is not None,
    }


def show(ctx: Context, version: int | str) -> dict[str, Any]:
    """One version as an approver needs it: live status and aliases, the gate table and the
    evidence recorded at proposal, the release report, and where its plots are."""
    v = ctx.registry.version(version)
    doc = Evidence.of(v)
    run = ctx.runs.get_run(v.run_id)
    plots = [p for p in ctx.runs.artifact_paths(run.run_id, "plots", depth=1) if p.endswith(".png")]
    if ctx.store.is_local:
        where = [f"{run.artifact_uri.removeprefix('file://')}/{p}" for p in plots]
    else:
        base = ctx.store.tracking_uri.rstrip("/")
        link = f"{base}/#/experiments/{ctx.runs.experiment_id()}/runs/{run.run_id}/artifacts"
        where = [f"{link}/{p}" for p in plots]
    return {
        **v.to_json(),
        "registered_model": ctx.model,
        "note": v.tags.get(keys.NOTE, ""),
        "proposed_at": v.tags.get(keys.PROPOSED_AT),
        "baseline_version": v.tags.get(keys.BASELINE_VERSION),
        "gates": [g.to_json() for g in doc.gates],
        "evidence": doc.facts,
        "report": ctx.registry.description(v.version),
        "plots": where,
    }


def status_each(contexts: list[Context]) -> StatusEach:
    """`status` of each model (`status --model`: one)."""
    return StatusEach([status(ctx) for ctx in contexts])


@dataclass(frozen=True)
class StatusEach:
    models: list[dict[str, Any]]  # `status` of each model, sorted by name

    def to_json(self) -> dict[str, Any]:
        """One model's status as it is; several under "models"."""
        return self.models[0] if len(self.models) == 1 else {"models": self.models}


def history(ctx: Context, limit: int = 20) -> list[Event]:
    """The newest `limit` audit events, newest first. The stored policy is read too: an
    edited one is an integrity alert (exit 3) here as everywhere."""
    if not 1 <= limit <= 100_000:
        raise BadInput(f"--limit {limit} is out of range; use 1 to 100000")
    _ = ctx.policy
    return list(reversed(ctx.log.events))[:limit]


@dataclass(frozen=True)
class History:
    """`history`: the newest events, each with what its gates said (propose events)."""

    events: list[Event]

    def entries(self) -> list[dict[str, Any]]:
        return [{**e.to_json(), "gate_outcome": gate_outcome(e)} for e in self.events]

    def to_json(self) -> dict[str, Any]:
        return {"events": self.entries()}


def history_of(ctx: Context, limit: int = 20) -> History:
    """`history` as the command shows it."""
    return History(history(ctx, limit))


@dataclass(frozen=True)
class Verifications:
    """`audit verify` of one model or several."""

    results: list[tuple[str, Verification]]  # (model, its verification), sorted by name

    @property
    def ok(self) -> bool:
        return all(r.ok for _, r in self.results)

    def to_json(self) -> dict[str, Any]:
        """One model's verification as it is; several under "models" with "ok" for all."""
        if len(self.results) == 1:
            return self.results[0][1].to_json()
        return {"ok": self.ok, "models": {name: r.to_json() for name, r in self.results}}


def verify_each(contexts: list[Context]) -> Verifications:
    """`audit verify` for each model: its chain, head, policy versions and registry. A model
    whose stored policy was edited cannot even be opened: that is its (failed) result."""
    out = []
    for ctx in contexts:
        try:
            out.append((ctx.model, lifecycle.verify(ctx)))
        except IntegrityViolation as exc:
            out.append((ctx.model, Verification(False, 0, [str(exc)])))
    return Verifications(out)


def gate_outcome(e: Event) -> str | None:
    """What a propose event's gates said ("passed", or "failed: gate, gate"); None for the
    other events. A run proposed again names the version it follows."""
    if e.action != Action.PROPOSE:
        return None
    failed = e.details.get("failed_gates") or []
    text = "passed" if e.status == Status.PENDING else "failed: " + ", ".join(map(str, failed))
    again = e.details.get("proposed_again_after")
    return text + (f" (run proposed again after v{again})" if again is not None else "")
