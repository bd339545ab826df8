"""Rendering for people: rich tables on stdout, progress on stderr. JSON rendering is in cli."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from magenta_release.core.card import environment_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from magenta_release.app.compare import Comparison
    from magenta_release.io.store import RunInfo


# ANSI escape sequences (CSI, OSC ended by BEL or ST, and the other ESC sequences), C0/C1
# control characters and the invisible format characters that reorder or hide text (bidi
# overrides, zero-width): whatever reaches a terminal from the store (an event's action, a
# status tag, a --reason, a run name) must never clear the screen, fake colours, open links or
# write the clipboard (OSC 52) in the approver's terminal.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor, clear screen
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC/DCS/SOS/PM/APC strings
    r"|\x1b[ -/]*[0-~]?"  # the rest of ESC: charsets, resets, a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)


def safe(value: object, *, newlines: bool = False) -> str:
    """Text from the store or from people, for a terminal line: escape sequences and control
    characters removed, newlines as spaces (kept with `newlines=True`, for multi-line text).
    Every `error:` line and every echoed field goes through it; Rich text through `plain`."""
    text = str(value).replace("\r\n", "\n")
    if not newlines:
        text = text.replace("\n", " ")
    return _CONTROL.sub("", text)


def plain(value: object) -> Text:
    """User-supplied text for Rich: no markup parsed (`[/bold]`, `[link=...]` print as they
    are), no control characters, newlines as spaces."""
    from rich.text import Text

    return Text(safe(value))


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(
        stderr=stderr,
        no_color=bool(os.environ.get("NO_COLOR")),
        highlight=False,
        soft_wrap=False,
        width=None if os.isatty(1) else 160,
    )


@contextmanager
def progress(enabled: bool = True) -> Iterator[Any]:
    """A spinner on stderr; yields a callback that updates its message."""
    err = console(stderr=True)
    if not enabled or not err.is_terminal:
        yield lambda msg: err.print(plain(f"… {msg}"), style="dim") if enabled else None
        return
    with err.status("starting") as status:
        yield lambda msg: status.update(plain(msg))


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def runs_table(runs: list[RunInfo]) -> None:
    from rich.table import Table

    table = Table(title="Training runs (newest first)")
    for col in ("run id", "name", "status", "roc_auc", "pr_auc", "lift@10", "dataset"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            plain(r.run_id[:12]),
            plain(r.name),
            plain(r.status),
            fmt(r.metrics.get("roc_auc")),
            fmt(r.metrics.get("pr_auc")),
            fmt(r.metrics.get("lift_at_10"), 2),
            plain(r.dataset_sha256[:12]),
        )
    console().print(table)


def comparison_table(c: Comparison) -> None:
    from rich.table import Table

    from magenta_release.core.metrics import REPORTED_METRICS

    out = console()
    table = Table(
        title=f"Comparison of {len(c.runs)} runs (best in bold"
        + (f"; Δ vs champion v{c.champion['version']})" if c.champion else ")")
    )
    table.add_column("", style="bold")
    for r in c.runs:
        table.add_column(plain(r.name or r.run_id[:8]), justify="right")
    if c.champion:
        table.add_column(plain(f"champion v{c.champion['version']}"), justify="right", style="cyan")
    table.add_row(
        "run id",
        *[plain(r.run_id[:12]) for r in c.runs],
        *([plain(c.champion["run_id"][:12])] if c.champion else []),
    )
    for m in REPORTED_METRICS:
        cells = []
        for r in c.runs:
            text = fmt(r.metrics.get(m))
            delta = c.delta(r, m)
            if delta is not None:
                # a delta across different evaluation rows is marked, never shown bare; so is
                # one on rows the champion was trained on
                mark = "" if c.same_rows_as_champion(r) else "*"
                mark += "†" if c.champion_trained_on.get(r.run_id) else ""
                text += f" ({delta:+.4f}{mark})"
            cells.append(f"[bold green]{text}[/]" if c.best.get(m) == r.run_id else text)
        table.add_row(m, *cells, *([fmt(c.champion["metrics"].get(m))] if c.champion else []))
    for p in c.differing_params:
        table.add_row(
            plain(f"param {p}"),
            *[plain(r.params.get(p, "—")) for r in c.runs],
            *([""] if c.champion else []),
        )
    table.add_row(
        "dataset",
        *[plain(r.dataset_sha256[:12]) for r in c.runs],
        *([plain(str(c.champion["dataset_digest"])[:12])] if c.champion else []),
    )
    out.print(table)
    _comparison_notes(out, c)
    if len({r.dataset_sha256 for r in c.runs}) > 1:
        out.print(
            "[yellow]warning:[/] these runs were evaluated on different rows; their "
            "metrics are not directly comparable."
        )
    if not c.differing_params:
        out.print("[dim]all parameters are equal across these runs[/dim]")


def _comparison_notes(out: Console, c: Comparison) -> None:
    """What the marks of the Δ column mean, and why a champion was not re-scored."""
    if c.champion and not all(c.same_rows_as_champion(r) for r in c.runs):
        out.print(
            "[yellow]*[/] evaluated on other rows than the champion: that Δ compares metrics "
            "of different customers. `magenta-release propose` re-scores the champion on the "
            "run's own rows; trust the gates' Δ, not this one."
        )
        for r in c.runs:
            if r.run_id in c.not_rescored:
                out.print(
                    plain(
                        f"  {r.name or r.run_id[:12]}: the champion could not be re-scored on "
                        f"its rows ({c.not_rescored[r.run_id]})"
                    )
                )
    trained_on = {r.name or r.run_id[:12]: c.champion_trained_on.get(r.run_id, 0) for r in c.runs}
    if any(trained_on.values()):
        shown = ", ".join(f"{name} {n:,}" for name, n in trained_on.items() if n)
        out.print(
            plain(
                f"† evaluation rows the champion was trained on ({shown}): that Δ favours the "
                "champion; the gates leave such rows out (evaluation_disjoint)"
            )
        )


def gates_table(title: str, gates: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=plain(title))
    table.add_column("gate")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for g in gates:
        table.add_row(
            plain(g["name"]),
            "[green]pass[/]" if g["passed"] is True else "[bold red]FAIL[/]",
            plain(g["detail"]),
        )
    console().print(table)


def status_table(doc: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=plain(f"Release status of {doc['registered_model']}"))
    for col in ("version", "status", "aliases", "proposed by", "approved by", "run"):
        table.add_column(col)
    for v in doc["versions"]:
        table.add_row(
            plain(v["version"]),
            plain(v["status"]),
            plain(", ".join("@" + a for a in v["aliases"])),
            plain(v["proposed_by"] or ""),
            plain(v["approved_by"] or ""),
            plain(v["run_id"][:12]),
        )
    out = console()
    out.print(
        table
        if doc["versions"]
        else plain(
            f"{doc['registered_model']}: no versions yet: propose a run with "
            "`magenta-release propose RUN_ID`"
        )
    )
    champ = doc["champion"]
    waiting = ", ".join(
        f"v{p['version']} ({p['age_days']} days)"
        if p.get("age_days") is not None
        else f"v{p['version']}"
        for p in doc["pending"]
    )
    out.print(
        plain(
            f"champion: {'v' + str(champ['version']) if champ else 'none'}   "
            f"pending approval: {waiting or 'none'}"
        )
    )
    for f in doc.get("notify_failures", []):
        why = "; ".join(f"{d['webhook']}: {d['error']}" for d in f["failed"])
        out.print(
            Text("notification failed: ", style="yellow")
            + plain(f"v{f['version']} {f['event']} at {f['at']} ({why})")
        )
    for run in doc.get("dead_runs", []):
        out.print(
            Text(f"run {safe(run)} is RUNNING but its process is gone", style="yellow")
            + " (repair marks it FAILED)"
        )
    if not doc.get("identity_verified", True):
        out.print(
            "[dim]embedded store: names are typed (--by), not verified; a server verifies "
            "identity[/dim]"
        )


def history_table(events: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Release history (newest first)")
    for col in (
        "#",
        "time (UTC)",
        "actor",
        "action",
        "version",
        "champion",
        "gates",
        "reason",
        "hash",
    ):
        table.add_column(col, overflow="fold")
    # Events come newest first; a policy change shows as its own line where it happened.
    older = [*events[1:], None]
    for e, before in zip(events, older, strict=True):
        who = f"{e['actor']}" + (f" ({e['mlflow_user']})" if e.get("mlflow_user") else "")
        was = "none" if e["champion_before"] is None else e["champion_before"]
        now = "none" if e["champion_after"] is None else e["champion_after"]
        champ = f"{was}→{now}" if was != now else str(now)
        # every cell is text from the log: printed as it is, never read as markup
        table.add_row(
            plain(e["seq"]),
            plain(str(e["time"])[:19]),
            plain(who),
            plain(e["action"]),
            "" if e["version"] is None else plain(e["version"]),
            plain(champ),
            plain(e.get("gate_outcome") or ""),
            plain(e["reason"]),
            plain(str(e["hash"])[:12]),
        )
        if before is not None and before.get("policy_sha256") != e.get("policy_sha256"):
            table.add_row(
                "",
                "",
                "",
                Text("policy changed", style="bold yellow"),
                "",
                "",
                plain(e["action"]),
                "" if e["version"] is None else plain(e["version"]),
                plain(champ),
                plain(e.get("gate_outcome") or ""),
                "",
            )
    console().print(table)


def show_version(doc: dict[str, Any]) -> None:
    """`show VERSION`: status first (live), then the gates, the report, the plots."""
    from rich.markdown import Markdown

    out = console()
    aliases = ", ".join("@" + a for a in doc["aliases"]) or "no alias"
    out.print(
        plain(
            f"{doc['registered_model']} version {doc['version']}: {doc['status']} ({aliases}); "
            f"proposed by {doc['proposed_by']} at {doc['proposed_at']}"
            + (
                f", approved by {doc['approved_by']} at {doc['approved_at']}"
                if doc["approved_by"]
                else ""
            )
        )
    )
    if doc.get("note"):
        out.print(plain(f"note: {doc['note']}"))
    gates_table(f"Gates at proposal (against champion {doc['baseline_version']})", doc["gates"])
    for role, entry in sorted(((doc.get("evidence") or {}).get("environments") or {}).items()):
        out.print(plain(environment_text(role, entry)))
    if doc.get("report"):
        out.print(Markdown(safe(doc["report"], newlines=True)))
    for path in doc.get("plots", []):
        out.print(plain(f"plot: {path}"))
