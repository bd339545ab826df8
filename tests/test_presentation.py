"""The panel deck stays true to the tool: every command on its live-demo slide is a real
`magenta-release` subcommand (or Makefile target) with options its `--help` lists, and every
image it shows is one those commands write (screenshots are not committed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import invoke

ROOT = Path(__file__).resolve().parent.parent
DECK = ROOT / "docs" / "presentation.md"


def _slides() -> list[str]:
    text = DECK.read_text()
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    assert re.search(r"^marp:\s*true$", front, flags=re.M)
    return re.split(r"^---$", body, flags=re.M)


def _demo_commands() -> list[list[str]]:
    slide = next(s for s in _slides() if re.search(r"^## Live demo: the script", s, flags=re.M))
    block = re.search(r"```bash\n(.*?)```", slide, flags=re.S)
    assert block
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def _subcommand(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split `magenta-release audit verify --x y` into (['audit', 'verify'], ['--x', 'y'])."""
    words = []
    for word in argv[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    # `compare RUN_ID...` takes positionals; a group (`audit`, `policy`) takes a subcommand
    path = words[:2] if words[:1] in (["audit"], ["policy"]) else words[:1]
    return path, argv[1 + len(path) :]


def test_the_demo_runs_the_promised_commands() -> None:
    lines = [" ".join(c) for c in _demo_commands()]
    assert lines[0] == "make demo"
    for expected in (
        "status",
        "history",
        "compare --last 2 --plot out/compare.png",
        "audit verify",
    ):
        assert f"magenta-release {expected}" in lines


@pytest.mark.parametrize("argv", _demo_commands(), ids=lambda a: " ".join(a))
def test_every_demo_command_exists_with_its_options(argv: list[str]) -> None:
    if argv[0] == "make":
        targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
        assert set(argv[1:]) <= set(targets)
        return
    if argv[0] == "source":
        assert argv[1:] == [".venv/bin/activate"]  # what `make setup` creates
        return
    if argv[0] == "export":  # the demo's store, where `make demo` says it is
        from magenta_release.demo import DEMO_DIR

        assert argv[1:] == [f"MAGENTA_RELEASE_HOME={DEMO_DIR}/mlruns"]
        return
    assert argv[0] == "magenta-release"
    path, rest = _subcommand(argv)
    result = invoke([*path, "--help"], {"NO_COLOR": "1", "COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, (path, result.stderr)
    assert result.stdout.strip()
    for option in (w.split("=", 1)[0] for w in rest if w.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout), (
            f"`{' '.join(argv)}`: {option} is not in `magenta-release {' '.join(path)} --help`"
        )


def test_an_unknown_option_would_be_caught() -> None:
    """The check above can fail: an option a command does not have is not in its help."""
    result = invoke(["status", "--help"], {"NO_COLOR": "1", "COLUMNS": "200"})
    assert "--plot" not in result.stdout and "--json" in result.stdout


def test_images_are_written_by_the_demo_not_committed() -> None:
    written = {argv[argv.index("--plot") + 1] for argv in _demo_commands() if "--plot" in argv}
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", DECK.read_text())
    assert images
    for image in images:
        target = (DECK.parent / image).resolve()
        assert target.is_relative_to(ROOT / "out"), f"{image}: not produced by the demo"
        assert str(target.relative_to(ROOT)) in written, f"{image}: no demo command writes it"
