"""The model card of a version: what an approver reads before deciding. Intended
use, owner and limitations from the policy's `[card]`; the data; every metric with a bootstrap
confidence interval; the gate results; proposer and approver; the per-segment table and the
disparate-impact check of `[segments]`.

What is computed is computed once, at propose (`core.card.assess`, a gate step), and kept in the
version's evidence tag, whose SHA-256 the audit log records: the card shows what the approver
approves, not a recomputation. `build` assembles the card from that evidence and the version's
live tags (status, approver), so `magenta-release card` reads only. The copy attached to the
run at propose (`release/card.md`, `release/card.json`) is the card as proposed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from magenta_release.app.context import Context
from magenta_release.core import keys
from magenta_release.core.card import markdown
from magenta_release.core.evidence import Evidence
from magenta_release.core.metrics import REPORTED_METRICS
from magenta_release.core.records import RunInfo, VersionInfo

__all__ = ["attach", "card_of", "markdown"]


def _data(run: RunInfo, evidence: dict[str, Any], period: str | None) -> dict[str, Any]:
    """Where the data came from, as the run and the gates recorded it."""
    from magenta_release.core.synthetic import GENERATOR, MONTHS

    try:
        recorded = json.loads(run.tags.get(keys.RUN_DATA, "{}"))
    except ValueError:
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    source = run.tags.get(keys.RUN_DATA_SOURCE) or evidence.get("source") or "unknown"
    digests = [i.digest for i in run.evaluation_inputs]
    eval_rows = evidence.get("metrics", {}).get("eval_rows") or recorded.get("eval_rows")
    if period is None and str(source).startswith(f"synthetic://{GENERATOR}/"):
        period = f"{MONTHS[0]} .. {MONTHS[-1]} (usage months of the generator)"
    return {
        "source": source,
        "digest": run.dataset_sha256 or None,
        "rows": recorded.get("rows"),
        "evaluation_digest": run.tags.get(keys.RUN_EVAL_SHA256)
        or (f"MLflow digest {digests[0]}" if digests else None),
        "evaluation_rows": None if eval_rows is None else int(eval_rows),
        "split": recorded.get("split"),
        "period": period,
    }


def _people(v: VersionInfo) -> dict[str, Any]:
    t = v.tags
    people = {
        "proposed_by": keys.PROPOSED_BY,
        "proposed_at": keys.PROPOSED_AT,
        "note": keys.NOTE,
        "approved_by": keys.APPROVED_BY,
        "approved_at": keys.APPROVED_AT,
        "approve_reason": keys.APPROVE_REASON,
        "rejected_by": keys.REJECTED_BY,
        "rejected_at": keys.REJECTED_AT,
        "reject_reason": keys.REJECT_REASON,
        "rolled_back_by": keys.ROLLED_BACK_BY,
        "rolled_back_at": keys.ROLLED_BACK_AT,
    }
    return {field: t.get(key) or None for field, key in people.items()}


def card_of(ctx: Context, v: VersionInfo, *, as_proposed: bool = False) -> dict[str, Any]:
    """The card of version `v` as a JSON-ready dict. Reads only. `as_proposed`: the copy
    attached at propose (its status is the proposal's; approver fields are still empty)."""
    run = ctx.runs.get_run(v.run_id)
    doc = Evidence.of(v)
    ev = doc.facts
    recorded = doc.card
    about = recorded.get("about")
    about_from = "policy at proposal"
    if about is None:  # proposed before cards existed, or the rows could not be re-read
        about, about_from = ctx.policy.card.model_dump(mode="json"), "current policy"
    values = doc.metrics
    intervals = recorded.get("intervals", {})
    cis = intervals.get("metrics", {})
    rescored = doc.rescored or {}
    return {
        "registered_model": ctx.model,
        "version": v.version,
        "run_id": v.run_id,
        "as_of": "proposal" if as_proposed else "now",
        "status": v.status,
        "aliases": [] if as_proposed else list(v.aliases),
        "intended_use": about.get("intended_use") or None,
        "owner": about.get("owner") or None,
        "limitations": list(about.get("limitations") or []),
        "about_from": about_from,
        "data": _data(run, ev, about.get("data_period")),
        "metrics": {
            "threshold": values.get("threshold"),
            "confidence": intervals.get("confidence"),
            "bootstrap_rounds": intervals.get("rounds"),
            "values": {
                m: {
                    "value": values[m],
                    "ci_low": cis[m][0] if m in cis else None,
                    "ci_high": cis[m][1] if m in cis else None,
                }
                for m in REPORTED_METRICS
                if m in values
            },
            "champion": doc.champion,
            "vs_champion": rescored.get("bootstrap"),
        },
        "gates": [g.to_json() for g in doc.gates],
        "people": _people(v),
        "segments": recorded.get("segments"),
        "environments": ev.get("environments"),
    }


def attach(ctx: Context, v: VersionInfo, folder: Path) -> None:
    """Write `card.md` and `card.json` (the card as proposed) into `folder`, which the caller
    logs as the run's `release/` artifacts."""
    doc = card_of(ctx, v, as_proposed=True)
    (folder / "card.md").write_text(markdown(doc))
    (folder / "card.json").write_text(json.dumps(doc, indent=1, default=str))
