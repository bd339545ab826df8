"""The README's compatibility table says what pyproject.toml and the locks say: each library's
supported range is its specifier in the base install or `[dagster]`, the floor is the version
`make test-compat` installs (the range's lower bound), the top is requirements.lock's pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- compatibility table", "<!-- end of compatibility table -->"


def rows(readme: str) -> dict[str, tuple[str, str, str]]:
    table = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[1:]]
    return {c[0]: (c[1], c[2], c[3]) for c in cells[2:] if len(c) == 4}


def declared() -> dict[str, Requirement]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [*meta["dependencies"], *meta["optional-dependencies"]["dagster"]]
    return {Requirement(d).name: Requirement(d) for d in deps}


def problems(readme: str) -> list[str]:
    lock = dict(
        re.findall(r"^([a-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    )
    table, deps = rows(readme), declared()
    out = [f"{name}: not in the table" for name in deps if name not in table]
    for name, (supported, floor, top) in table.items():
        req = deps.get(name)
        if req is None:
            out.append(f"{name}: in the table, not a dependency")
            continue
        if SpecifierSet(supported) != req.specifier:
            out.append(f"{name}: table says {supported}, pyproject.toml {req.specifier}")
        low = [s.version for s in req.specifier if s.operator == ">="]
        if [floor] != low:
            out.append(f"{name}: floor {floor}, pyproject.toml's lower bound {low}")
        if lock.get(name) != top:
            out.append(f"{name}: top {top}, requirements.lock {lock.get(name)}")
    return out


def test_the_readme_table_matches_pyproject_and_the_lock() -> None:
    assert problems((ROOT / "README.md").read_text()) == []


def test_a_stale_row_is_caught() -> None:
    """Positive control: the table 0.1.0 would have needed (pandas from 3.1) is refused."""
    readme = (ROOT / "README.md").read_text()
    stale = readme.replace("| pandas | >=2.2.3,<4 | 2.2.3 |", "| pandas | >=3.1,<4 | 3.1 |")
    assert stale != readme
    assert any(p.startswith("pandas:") for p in problems(stale))
