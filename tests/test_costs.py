"""docs/costs.md adds up, and the figures other docs quote are the ones costs.md computes."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
COSTS = DOCS / "costs.md"
MONEY = re.compile(r"\$(\d[\d,]*\.\d{2})")


def _tables(text: str) -> dict[str, list[list[str]]]:
    """{heading: rows} for every markdown table whose last column is `monthly`."""
    tables: dict[str, list[list[str]]] = {}
    heading = ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        is_header = line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---")
        if is_header and cells[-1] == "monthly":
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            tables[heading] = rows
    return tables


def _amount(cell: str) -> Decimal:
    found = MONEY.findall(cell)
    assert len(found) == 1, f"expected one $x.yy amount in {cell!r}"
    return Decimal(found[0].replace(",", ""))


def _totals() -> dict[str, Decimal]:
    out = {}
    for heading, rows in _tables(COSTS.read_text()).items():
        total = [r for r in rows if r[0] == "**total**"]
        assert len(total) == 1, f"{heading}: needs exactly one | **total** | row"
        out[heading] = _amount(total[0][-1])
    return out


TABLES = _tables(COSTS.read_text())


def test_costs_has_the_tables_the_other_docs_quote() -> None:
    headings = " ".join(TABLES)
    for needed in ("floor", "usage", "Dagster", "all in", "warm", "10\u00d7", "Total cost"):
        assert needed in headings, needed
    assert len(TABLES) >= 7


@pytest.mark.parametrize("heading", list(TABLES), ids=lambda h: h[:30])
def test_each_total_is_the_sum_of_its_lines(heading: str) -> None:
    rows = TABLES[heading]
    lines = [r for r in rows if r[0] != "**total**"]
    assert lines, f"{heading}: a total with no lines"
    total = _amount(next(r for r in rows if r[0] == "**total**")[-1])
    assert sum((_amount(r[-1]) for r in lines), Decimal("0")) == total, heading


def test_all_in_lines_are_the_totals_of_their_tables() -> None:
    totals = _totals()
    all_in = {r[0]: _amount(r[-1]) for r in next(v for k, v in TABLES.items() if "all in" in k)}
    floor = next(v for k, v in totals.items() if "floor" in k)
    usage = next(v for k, v in totals.items() if "usage" in k)
    dagster = next(v for k, v in totals.items() if k.startswith("Dagster"))
    assert (all_in["fixed floor"], all_in["usage"], all_in["Dagster"]) == (floor, usage, dagster)
    tco = next(v for k, v in TABLES.items() if k.startswith("Total cost"))
    infra = next(r for r in tco if r[0].startswith("infrastructure"))
    assert _amount(infra[-1]) == all_in["**total**"]


def test_cloud_run_lines_are_quantity_times_unit_price() -> None:
    """The 10x and warm figures include memory, not only vCPU."""
    for rows in TABLES.values():
        for row in rows:
            qty = re.search(r"([\d,]+) (vCPU-s|GiB-s)", row[1]) if len(row) > 2 else None
            if not qty:
                continue
            unit = Decimal("0.0000336") if qty.group(2) == "vCPU-s" else Decimal("0.0000035")
            expected = (Decimal(qty.group(1).replace(",", "")) * unit).quantize(Decimal("0.01"))
            assert _amount(row[-1]) == expected, row
    for heading in (k for k in TABLES if "warm" in k or "10\u00d7" in k):
        units = " ".join(r[1] for r in TABLES[heading])
        assert "vCPU-s" in units and "GiB-s" in units, heading


def test_other_docs_quote_the_same_figures() -> None:
    totals = _totals()
    warm = next(v for k, v in totals.items() if "warm" in k)
    all_in = next(v for k, v in totals.items() if "all in" in k)
    floor = next(v for k, v in totals.items() if "floor" in k)
    rollout = (DOCS / "rollout.md").read_text()
    assert f"${warm}" in rollout, "rollout.md must quote the warm-instance figure of costs.md"
    selection = (DOCS / "tool-selection.md").read_text()
    assert f"${all_in}" in selection and f"${floor}" in selection
    quoted = {Decimal(m.replace(",", "")) for m in MONEY.findall(selection)}
    assert quoted <= set(totals.values()), quoted - set(totals.values())


def test_no_scale_to_zero_claim_for_the_whole_deployment() -> None:
    for name in ("costs.md", "architecture.md", "tool-selection.md", "rollout.md"):
        text = (DOCS / name).read_text().lower()
        for sentence in re.split(r"(?<=[.;:])\s", text):
            if "scale to zero" in sentence or "scales to zero" in sentence:
                assert "server" in sentence or "cloud run" in sentence, (name, sentence)
