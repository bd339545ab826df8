"""The model card of a version (issue 16): what an approver reads before deciding. Intended
use, owner and limitations from the policy's `[card]`; the data; every metric with a bootstrap
confidence interval; the gate results; proposer and approver; the per-segment table and the
disparate-impact check of `[segments]`.

What is computed is computed once, at propose (`assess`, called by the gates), and kept in the
version's evidence tag, whose SHA-256 the audit log records: the card shows what the approver
approves, not a recomputation. `build` assembles the card from that evidence and the version's
live tags (status, approver), so `magenta-release card` reads only. The copy attached to the
run at propose (`release/card.md`, `release/card.json`) is the card as proposed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magenta_release import segments
from magenta_release.evaluate import REPORTED_METRICS
from magenta_release.gates import Gate, bootstrap_intervals
from magenta_release.gates import markdown as gates_markdown
from magenta_release.store import RunInfo, Store, VersionInfo

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_THRESHOLD = 0.5  # what `evaluate_gates` uses for a run that logged no threshold
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n


def _threshold(run: RunInfo) -> float:
    return float(run.metrics.get("threshold", DEFAULT_THRESHOLD))


def assess(
    store: Store,
    run: RunInfo,
    frame: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    champion: VersionInfo | None = None,
    champion_scores: np.ndarray | None = None,
) -> tuple[list[Gate], dict[str, Any]]:
    """At propose, on the evaluation rows both models were scored on: the segment gates
    (none without `[segments]`) and the card's evidence (confidence intervals, the policy's
    `[card]` as it was, the segment table)."""
    policy = store.policy
    g = policy.gates
    theirs = None
    if champion is not None and champion_scores is not None:
        theirs = _threshold(store.runs.get_run(champion.run_id))
    gates, segment_evidence = segments.assess(
        policy, frame, y, challenger, champion_scores, (_threshold(run), theirs)
    )
    intervals = bootstrap_intervals(y, challenger, g.bootstrap_rounds, g.bootstrap_confidence)
    evidence = {
        "about": policy.card.model_dump(mode="json"),
        "intervals": {
            "rounds": g.bootstrap_rounds,
            "confidence": g.bootstrap_confidence,
            "metrics": {m: list(ci) for m, ci in intervals.items()},
        },
        "segments": segment_evidence,
    }
    return gates, evidence


def _evidence(v: VersionInfo) -> dict[str, Any]:
    try:
        doc = json.loads(v.tags.get("release.evidence", "{}"))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _data(
    store: Store, run: RunInfo, evidence: dict[str, Any], period: str | None
) -> dict[str, Any]:
    """Where the data came from, as the run and the gates recorded it."""
    from magenta_release.data import GENERATOR, MONTHS

    try:
        recorded = json.loads(run.tags.get("magenta.data", "{}"))
    except ValueError:
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    source = run.tags.get("magenta.data_source") or evidence.get("source") or "unknown"
    digests = [i.digest for i in run.evaluation_inputs]
    eval_rows = evidence.get("metrics", {}).get("eval_rows") or recorded.get("eval_rows")
    if period is None and str(source).startswith(f"synthetic://{GENERATOR}/"):
        period = f"{MONTHS[0]} .. {MONTHS[-1]} (usage months of the generator)"
    return {
        "source": source,
        "digest": run.dataset_sha256 or None,
        "rows": recorded.get("rows"),
        "evaluation_digest": run.tags.get("magenta.eval_sha256")
        or (f"MLflow digest {digests[0]}" if digests else None),
        "evaluation_rows": None if eval_rows is None else int(eval_rows),
        "split": recorded.get("split"),
        "period": period,
    }


def _people(v: VersionInfo) -> dict[str, Any]:
    t = v.tags
    keys = (
        "proposed_by",
        "proposed_at",
        "note",
        "approved_by",
        "approved_at",
        "approve_reason",
        "rejected_by",
        "rejected_at",
        "reject_reason",
        "rolled_back_by",
        "rolled_back_at",
    )
    return {k: t.get(f"release.{k}") or None for k in keys}


def build(store: Store, version: int | str, *, as_proposed: bool = False) -> dict[str, Any]:
    """The card of one version as a JSON-ready dict. Reads only. `as_proposed`: the copy
    attached at propose (its status is the proposal's; approver fields are still empty)."""
    v = store.registry.version(version)
    run = store.runs.get_run(v.run_id)
    doc = _evidence(v)
    ev: dict[str, Any] = doc.get("evidence", {})
    recorded: dict[str, Any] = ev.get("card") or {}
    about = recorded.get("about")
    about_from = "policy at proposal"
    if about is None:  # proposed before cards existed, or the rows could not be re-read
        about, about_from = store.policy.card.model_dump(mode="json"), "current policy"
    values = ev.get("metrics", {})
    intervals = recorded.get("intervals", {})
    cis = intervals.get("metrics", {})
    rescored = ev.get("rescored") or {}
    return {
        "registered_model": store.name,
        "version": v.version,
        "run_id": v.run_id,
        "as_of": "proposal" if as_proposed else "now",
        "status": v.status,
        "aliases": [] if as_proposed else list(v.aliases),
        "intended_use": about.get("intended_use") or None,
        "owner": about.get("owner") or None,
        "limitations": list(about.get("limitations") or []),
        "about_from": about_from,
        "data": _data(store, run, ev, about.get("data_period")),
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
            "champion": doc.get("champion"),
            "vs_champion": rescored.get("bootstrap"),
        },
        "gates": doc.get("gates", []),
        "people": _people(v),
        "segments": recorded.get("segments"),
    }


def attach(store: Store, version: int, folder: Path) -> None:
    """Write `card.md` and `card.json` (the card as proposed) into `folder`, which the caller
    logs as the run's `release/` artifacts."""
    doc = build(store, version, as_proposed=True)
    (folder / "card.md").write_text(markdown(doc))
    (folder / "card.json").write_text(json.dumps(doc, indent=1, default=str))


# ---- markdown ---------------------------------------------------------------------------------
def _t(value: Any) -> str:
    """Text from the policy, the tags or the data, safe in a markdown table cell."""
    return _CONTROL.sub("", str(value)).replace("|", "\\|").replace("\n", " ")


def _n(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def markdown(card: dict[str, Any]) -> str:
    """The card as markdown (the terminal prints it as is; the run keeps it as card.md)."""
    head = f"# Model card: {_t(card['registered_model'])} v{card['version']}"
    state = (
        f"status at proposal: {card['status']}; the live status and the approver: "
        f"`magenta-release card {card['version']}`"
        if card["as_of"] == "proposal"
        else f"status: {card['status']}"
        + (f" ({', '.join('@' + a for a in card['aliases'])})" if card["aliases"] else "")
    )
    lines = [head, "", f"_{_t(state)}_", ""]
    lines += _about(card) + _data_lines(card) + _metric_lines(card)
    lines += ["## Gate results", "", gates_markdown(card["gates"]), ""]
    lines += _people_lines(card) + _segment_lines(card["segments"])
    lines += ["## Known limitations", ""]
    lines += [f"- {_t(x)}" for x in card["limitations"]] or [
        "- none recorded (set `limitations` under [card] in the release policy)"
    ]
    # Gate details quote the data (segment labels): nothing reaches a terminal unfiltered.
    return _CONTROL.sub("", "\n".join(lines)) + "\n"


def _about(card: dict[str, Any]) -> list[str]:
    missing = "not recorded (set it under [card] in the release policy)"
    return [
        "## Intended use and owner",
        "",
        f"- intended use: {_t(card['intended_use'] or missing)}",
        f"- owner: {_t(card['owner'] or missing)}",
        f"- (from the {card['about_from']})",
        "",
    ]


def _data_lines(card: dict[str, Any]) -> list[str]:
    d = card["data"]

    def rows(n: int | None) -> str:
        return "unknown" if n is None else f"{n:,}"

    return [
        "## Data",
        "",
        f"- source: `{_t(d['source'])}`",
        f"- digest: `{_t(d['digest'] or 'not recorded')}`; {rows(d['rows'])} rows",
        f"- evaluation rows: {rows(d['evaluation_rows'])}, "
        f"`{_t(d['evaluation_digest'] or 'not recorded')}`",
        f"- period: {_t(d['period'] or 'unknown')}",
        "",
    ]


def _metric_lines(card: dict[str, Any]) -> list[str]:
    m = card["metrics"]
    if not m["values"]:
        return ["## Metrics", "", "not computed: the evaluation rows could not be re-read", ""]
    level = f"{m['confidence']:.0%}" if m["confidence"] else "—"
    lines = [
        "## Metrics (recomputed on the evaluation rows)",
        "",
        f"| metric | value | {level} CI ({m['bootstrap_rounds'] or 0} bootstrap rounds) |",
        "| --- | --- | --- |",
    ]
    for name, v in m["values"].items():
        ci = "—" if v["ci_low"] is None else f"[{v['ci_low']:.4f}, {v['ci_high']:.4f}]"
        lines.append(f"| {name} | {v['value']:.4f} | {ci} |")
    lines += ["", f"- decision threshold: {_n(m['threshold'])}"]
    b = m["vs_champion"]
    if b:
        lines.append(
            f"- vs champion v{m['champion']} on the same rows: {b['metric']} difference "
            f"{b['mean_diff']:+.4f}, {b['confidence']:.0%} CI [{b['ci_low']:+.4f}, "
            f"{b['ci_high']:+.4f}] (paired bootstrap)"
        )
    else:
        lines.append("- no champion at proposal: nothing compared")
    return [*lines, ""]


def _people_lines(card: dict[str, Any]) -> list[str]:
    p = card["people"]
    lines = ["## Proposer and approver", ""]
    lines.append(
        f"- proposed by {_t(p['proposed_by'] or '?')} at {_t(p['proposed_at'] or '?')}"
        + (f": {_t(p['note'])}" if p["note"] else "")
    )
    if p["approved_by"]:
        lines.append(
            f"- approved by {_t(p['approved_by'])} at {_t(p['approved_at'])}: "
            f"{_t(p['approve_reason'] or '')}"
        )
    elif p["rejected_by"]:
        lines.append(
            f"- rejected by {_t(p['rejected_by'])} at {_t(p['rejected_at'])}: "
            f"{_t(p['reject_reason'] or '')}"
        )
    else:
        lines.append("- approver: none yet")
    if p["rolled_back_by"]:
        lines.append(f"- rolled back by {_t(p['rolled_back_by'])} at {_t(p['rolled_back_at'])}")
    return [*lines, ""]


def _segment_lines(seg: dict[str, Any] | None) -> list[str]:
    lines = ["## Segments", ""]
    if seg is None:
        return [*lines, "not configured (no [segments] in the release policy)", ""]
    if "error" in seg:
        return [*lines, f"not computed: {_t(seg['error'])}", ""]
    t = seg["thresholds"]
    lines += [
        f"{seg['metric']} and targeted rate (score >= threshold: challenger "
        f"{_n(t['challenger'])}, champion {_n(t['champion'])}) per segment; gated: at least "
        f"{seg['min_rows']:,} rows with both classes, allowed drop {seg['max_drop']}.",
        "",
        f"| segment | rows | churners | {seg['metric']} | champion | drop | targeted | "
        "champion targeted | gated |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in seg["segments"]:
        lines.append(
            f"| {_t(r['segment'])} | {r['rows']:,} | {r['positives']:,} | {_n(r['challenger'])} "
            f"| {_n(r['champion'])} | {_n(r['drop'])} | {_pct(r['challenger_rate'])} | "
            f"{_pct(r['champion_rate'])} | {'yes' if r['gated'] else 'no'} |"
        )
    di = seg.get("disparate_impact")
    if di:
        ratio = "not computed" if di["ratio"] is None else f"{di['ratio']:.2f}"
        lines += [
            "",
            f"Disparate impact across {_t(di['column'])}: lowest / highest targeted rate = "
            f"{ratio} (four-fifths rule: at least {di['min_ratio']}; "
            f"{'blocking' if di['blocking'] else 'reported, not blocking'})"
            + ("" if di["champion_ratio"] is None else f"; champion {di['champion_ratio']:.2f}"),
        ]
    return [*lines, ""]
