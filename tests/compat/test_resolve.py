"""magenta-release[dagster] resolves inside a team's pinned stack without moving any pin (issue
24): the team's requirements resolved alone and with the local wheel added must agree on every
package the team already had, on Python 3.11 and 3.12; the newest stack (pandas 3, scikit-learn,
XGBoost and Dagster at their newest) resolves too; and `xgboost` never comes with
`xgboost-cpu` (the same import package). Resolution only (`uv pip compile`): nothing is
installed. The install-time `uv pip install --dry-run` is in test_floor.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.compat.conftest import HERE, requirement, uv

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)", re.M)


def resolve(tmp_path: Path, python: str, *lines: str) -> dict[str, str]:
    """{package: version} that uv resolves for `lines` on `python` (a version, not a binary)."""
    src = tmp_path / f"in-{abs(hash(lines))}.txt"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / f"out-{abs(hash(lines))}.txt"
    uv("pip", "compile", "-q", "--python-version", python, str(src), "-o", str(out))
    return {m[1].lower(): m[2] for m in PIN.finditer(out.read_text())}


def team_pins() -> list[str]:
    lines = (HERE / "team-pins.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_the_dagster_extra_moves_none_of_the_teams_packages(
    wheel: Path, tmp_path: Path, python: str
) -> None:
    alone = resolve(tmp_path, python, *team_pins())
    together = resolve(tmp_path, python, *team_pins(), requirement(wheel, "dagster"))
    moved = {k: (v, together.get(k)) for k, v in alone.items() if together.get(k) != v}
    assert moved == {}, f"magenta-release[dagster] moves {moved}"
    assert together["pandas"].startswith("2.") and together["dagster"].startswith("1.9.")
    assert together["scikit-learn"] == "1.5.2"
    assert "xgboost-cpu" not in together  # the team's xgboost stays the only one


def test_the_positive_control_a_floor_above_a_pin_is_caught(wheel: Path, tmp_path: Path) -> None:
    """What the comparison above would see if a floor crept up again (0.1.0 asked for
    pandas>=3.1): the team's pandas moves, or there is no solution at all."""
    alone = resolve(tmp_path, "3.11", *team_pins())
    lines = [p for p in team_pins() if not p.startswith("pandas")]
    bumped = resolve(tmp_path, "3.11", *lines, "pandas>=3.1", requirement(wheel, "dagster"))
    assert bumped["pandas"] != alone["pandas"]


def test_the_newest_stack_resolves_with_pandas_3(wheel: Path, tmp_path: Path) -> None:
    newest = resolve(
        tmp_path,
        "3.12",
        "pandas>=3",
        "scikit-learn>=1.9",
        "xgboost>=3",
        "dagster>=1.13",
        requirement(wheel, "dagster"),
    )
    assert newest["pandas"].startswith("3.")
    assert "xgboost-cpu" not in newest


def test_a_team_on_xgboost_cpu_gets_no_second_xgboost(wheel: Path, tmp_path: Path) -> None:
    pins = [p if not p.startswith("xgboost") else "xgboost-cpu>=2.1.2,<3" for p in team_pins()]
    found = resolve(tmp_path, "3.11", *pins, requirement(wheel, "dagster"))
    assert "xgboost-cpu" in found and "xgboost" not in found
