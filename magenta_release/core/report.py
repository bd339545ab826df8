"""The release report of a proposal, as markdown: who proposed what, from which run, code,
data and policy, the gate table and both models on the same rows. Written once at propose
(run artifact `release/report.md` and the version's description in the MLflow UI)."""

from __future__ import annotations

from datetime import UTC, datetime

from magenta_release.core import keys
from magenta_release.core.evidence import Evidence
from magenta_release.core.gates import markdown
from magenta_release.core.metrics import REPORTED_METRICS
from magenta_release.core.records import RunInfo
from magenta_release.core.states import Status


def _eval_input_digest(run: RunInfo) -> str:
    """MLflow's digest of a team run's evaluation input (what the gates checked)."""
    found = run.evaluation_inputs
    return f"MLflow digest {found[0].digest}" if found else "?"


def release_report(
    model: str,
    run: RunInfo,
    version: int,
    status: str,
    actor: str,
    note: str,
    evidence: Evidence,
    champion: int | None,
) -> str:
    """The markdown release report: metrics vs champion, gates, data, lineage."""
    facts = evidence.facts
    now = datetime.now(UTC).isoformat(timespec="seconds")
    lines = [
        # No live status here: it changes after the report is written (`show` prints it).
        f"# {model} v{version}: release report "
        f"({'gates passed' if status != Status.FAILED else 'gates failed'})",
        "",
        f"- proposed by **{actor}** at {now}" + (f": {note}" if note else ""),
        f"- run `{run.run_id}` ({run.name}), "
        f"code `{run.tags.get('mlflow.source.git.commit', '?')}`",
        f"- data `{run.dataset_sha256 or 'evaluation input'}` from "
        f"`{run.tags.get(keys.RUN_DATA_SOURCE) or facts.get('source', '?')}`",
        f"- evaluation rows `{run.tags.get(keys.RUN_EVAL_SHA256) or _eval_input_digest(run)}`",
        f"- policy `{evidence.policy_sha256}`",
        f"- champion at proposal: {'v' + str(champion) if champion else 'none'}",
        "",
        "## Gates",
        "",
        markdown([g.to_json() for g in evidence.gates]),
    ]
    rescored = evidence.rescored
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
