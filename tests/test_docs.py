"""The docs stay true to the code: example sessions run as shown, links resolve, every price
and CVE carries a source link."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _sessions(path: Path) -> list[list[tuple[str, int]]]:
    """The `$ ` lines of each ```console block with their expected exit codes."""
    blocks = re.findall(r"```console\n(.*?)```", path.read_text(), flags=re.S)
    out = []
    for block in blocks:
        lines = []
        for line in block.splitlines():
            if line.startswith("$ "):
                cmd = line[2:]
                m = re.search(r"#\s*exits (\d+)\s*$", cmd)
                lines.append((cmd[: m.start()].rstrip() if m else cmd, int(m.group(1)) if m else 0))
        out.append(lines)
    return out


def test_docs_have_an_example_session() -> None:
    sessions = _sessions(ROOT / "docs" / "release-process.md")
    assert sessions and any("magenta-release approve" in c for c, _ in sessions[0])


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if _sessions(d)], ids=lambda d: d.name)
def test_example_sessions_run_as_shown(doc: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
            "NO_COLOR": "1",
            "MAGENTA_RELEASE_HOME": str(tmp_path / "mlruns"),
        }
    )
    env.pop("MAGENTA_RELEASE_USER", None)
    env.pop("MAGENTA_RELEASE_POLICY", None)
    for session in _sessions(doc):
        script = ["set -u"]
        for i, (cmd, code) in enumerate(session):
            script.append(
                f'{cmd}\nrc=$?; if [ $rc -ne {code} ]; then echo "line {i + 1}: '
                f'exit $rc, doc says {code}" >&2; exit 99; fi'
            )
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        # a reader of the repository must be able to open every citation
        assert "shared/" not in target, f"{doc.name}: cites notes outside the repository"
        if target.startswith("../out/"):
            continue  # written by the demo; tests/test_presentation.py checks who writes it
        assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_prices_and_cves_carry_sources(doc: Path) -> None:
    for line in doc.read_text().splitlines():
        if (
            re.search(r"\$\d", line)
            and "|" in line
            and not re.search(r"\*\*total\*\*|above|monthly", line)
        ):
            assert "https://" in line or "](" in line, f"{doc.name}: price without source: {line}"
        for cve in re.findall(r"CVE-\d{4}-\d+", line):
            assert f"nvd.nist.gov/vuln/detail/{cve}" in doc.read_text(), f"{doc.name}: {cve}"


# ---- figures: measurements from performance.md, money from costs.md ------------------------
from tests import docs_figures  # noqa: E402

QUOTING = [d for d in DOCS if d.name not in ("performance.md",)]


@pytest.mark.parametrize("doc", QUOTING, ids=lambda d: d.name)
def test_measurements_quoted_from_performance_md_are_what_it_says(doc: Path) -> None:
    """performance.md is rewritten by `make bench`: a doc that cites it must follow."""
    performance = docs_figures.PERFORMANCE.read_text()
    assert docs_figures.performance_problems(doc.read_text(), performance) == []


@pytest.mark.parametrize("doc", [d for d in QUOTING if d.name != "costs.md"], ids=lambda d: d.name)
def test_dollar_figures_are_ones_costs_md_states(doc: Path) -> None:
    assert docs_figures.cost_problems(doc.read_text(), docs_figures.COSTS.read_text()) == []


def test_performance_md_yields_the_values_the_check_compares_against() -> None:
    """The check reads performance.md as it is now; it must find the table's measurements."""
    measured = docs_figures.measured(docs_figures.PERFORMANCE.read_text())
    assert len(measured["s"]) > 20 and measured["rows/s"] and measured["MB"]


def test_a_planted_stale_measurement_is_caught() -> None:
    """Positive control, built from whatever performance.md says now: the exact figure passes,
    a rounding of it and the old deck's 1.2 s and 643k rows/s do not."""
    performance = docs_figures.PERFORMANCE.read_text()
    row = next(ln for ln in performance.splitlines() if ln.startswith("| train end to end"))
    ours = row.split("|")[5].strip()  # the `ours value` column, e.g. "16.351 s"
    cite = "([performance.md](performance.md))"
    assert docs_figures.performance_problems(f"training takes {ours} {cite}", performance) == []
    for stale in ("1.2 s", "643,000 rows/s", f"{float(ours.split()[0]) + 0.01:.3f} s"):
        line = f"training takes {stale} {cite}"
        assert docs_figures.performance_problems(line, performance), stale
    # a citation on the next line of the same paragraph still counts
    paragraph = f"scores 643,000 rows/s once the champion is\nloaded {cite}"
    assert docs_figures.performance_problems(paragraph, performance)


def test_a_planted_wrong_price_is_caught() -> None:
    costs = docs_figures.COSTS.read_text()
    assert docs_figures.cost_problems("about $31.00 a month, 10x $116.00", costs)
    assert docs_figures.cost_problems("SaaS for 10 users: $190\u2013500", costs)


def test_reliability_md_hard_codes_no_test_counts() -> None:
    """Counts went stale twice; `make test` prints them instead."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    header = next(ln for ln in text.splitlines() if ln.startswith("| suite"))
    assert "cases" not in header
