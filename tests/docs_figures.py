"""Figures that docs quote, checked against the two documents that produce them.

- **Measurements** come from docs/performance.md, which `make bench` rewrites. A paragraph,
  list item or table row of any other doc that links to performance.md may quote only figures
  that performance.md holds (its table, notes and profile notes), read from whatever
  performance.md says now: a number with a unit (`s`, `ms`, `rows/s`, `MB`) must be one that
  performance.md states, exactly (`16.351 s` or `272,869 rows/s`, not a rounding of them).
  Derived figures (a projection, a target) belong in a paragraph that does not cite it.
- **Money** comes from docs/costs.md: every dollar amount in another doc must be one that
  costs.md states (a total, a line, a unit price).

The functions take text, so tests can plant a wrong figure and see it caught.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
PERFORMANCE = DOCS / "performance.md"
COSTS = DOCS / "costs.md"

# 16.351 s, 0.16 s, 156 ms, 272,869 rows/s, 273k rows/s, 2,877 MB (not "5M rows", not "3.17.2")
MEASURE = re.compile(
    r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)\s?(k)?\s?(rows/s|ms|MB|s)(?![\w/])", flags=re.IGNORECASE
)
MONEY = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)")
UNIT = {"s": "s", "ms": "s", "rows/s": "rows/s", "mb": "MB"}


def _measures(text: str) -> list[tuple[Decimal, str, str]]:
    """(value in the base unit, base unit, the text as written)."""
    out = []
    for m in MEASURE.finditer(text):
        number, kilo, unit = m.group(1), m.group(2), m.group(3).lower()
        value = Decimal(number.replace(",", ""))
        if kilo:
            value *= 1000
        if unit == "ms":
            value /= 1000
        out.append((value, UNIT[unit], m.group(0)))
    return out


def measured(performance: str) -> dict[str, list[Decimal]]:
    """Every value performance.md states, by base unit."""
    found: dict[str, list[Decimal]] = {}
    for value, unit, _ in _measures(performance):
        found.setdefault(unit, []).append(value)
    return found


def _matches(figure: Decimal, candidates: list[Decimal]) -> bool:
    """Exactly a value performance.md states: `1.2 s` does not match a measured 1.238 s, and
    `273k rows/s` does not match 272,869 rows/s. Rounding would let a stale figure pass."""
    return any(figure == v for v in candidates)


def performance_problems(doc: str, performance: str) -> list[str]:
    """Figures on lines citing performance.md that performance.md does not hold."""
    values = measured(performance)
    problems = []
    for block in blocks(doc):
        if "performance.md" not in block:
            continue
        for figure, unit, written in _measures(block):
            if not _matches(figure, values.get(unit, [])):
                problems.append(f"{written!r} is not in performance.md: {block.strip()[:160]}")
    return problems


def blocks(doc: str) -> list[str]:
    """The units a citation covers: a table row, a list item, or a paragraph."""
    out: list[str] = []
    current: list[str] = []
    for line in doc.splitlines():
        starts = line.lstrip().startswith(("|", "- ", "* ", "#")) or re.match(r"\s*\d+\. ", line)
        if not line.strip() or starts:
            if current:
                out.append("\n".join(current))
            current = [line] if line.strip() else []
            if line.lstrip().startswith(("|", "#")):
                out.append(line)
                current = []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def amounts(text: str) -> set[Decimal]:
    return {Decimal(m.replace(",", "")) for m in MONEY.findall(text)}


def cost_problems(doc: str, costs: str) -> list[str]:
    """Dollar amounts that costs.md does not state."""
    known = amounts(costs)
    return [f"${amount} is not a figure of costs.md" for amount in sorted(amounts(doc) - known)]
