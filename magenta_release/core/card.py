"""The model card as pure values: the evidence computed at propose (`assess`: the segment
gates, confidence intervals of every metric, the policy's `[card]` as it was) and the card
rendered as markdown. Which version's card, from which tags, is `app.card`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from magenta_release.core import segments
from magenta_release.core.gates import Gate, bootstrap_intervals
from magenta_release.core.gates import markdown as gates_markdown

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from magenta_release.core.policy import Policy

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n


def assess(
    policy: Policy,
    frame: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    champion_scores: np.ndarray | None,
    thresholds: tuple[float, float],
) -> tuple[list[Gate], dict[str, Any]]:
    """At propose, on the evaluation rows both models were scored on: the segment gates
    (none without `[segments]`) and the card's evidence (confidence intervals, the policy's
    `[card]` as it was, the segment table). `thresholds`: each model's own."""
    g = policy.gates
    theirs = thresholds[1] if champion_scores is not None else None
    gates, segment_evidence = segments.assess(
        policy, frame, y, challenger, champion_scores, (thresholds[0], theirs)
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
    lines += _environment_lines(card.get("environments"))
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


def environment_text(role: str, entry: dict[str, Any]) -> str:
    """One line: the library versions a model recorded and where the gates scored it."""
    recorded = entry.get("recorded") or {}
    here = entry.get("here") or {}
    names = ", ".join(f"{n} {v}" for n, v in sorted(recorded.items())) or "none recorded"
    python = f", Python {entry['python']}" if entry.get("python") else ""
    differing = entry.get("differing") or []
    where = str(entry.get("scored_in") or "here")
    if differing:
        ours = ", ".join(f"{n} {here.get(n) or 'missing'}" for n in differing)
        where += f" (here: {ours})"
    unpinned = entry.get("unpinned") or []
    loose = f"; unpinned: {', '.join(unpinned)}" if unpinned else ""
    return f"{role}: {names}{python}; scored {where}{loose}"


def _environment_lines(envs: Any) -> list[str]:
    if not isinstance(envs, dict) or not envs:
        return []
    lines = ["## Library versions", ""]
    lines += [f"- {_t(environment_text(role, e))}" for role, e in sorted(envs.items())]
    return [*lines, ""]
