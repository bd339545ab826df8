"""The panel deck stays true to the tool and to the docs: it opens with the five answers and
ends with the demo; every command on its live-demo slide is a real `magenta-release`
subcommand (or Makefile target) with options its `--help` lists, and the script runs in order
on a fresh copy of the repository; every image it shows is one those commands write
(screenshots are not committed); every figure is one the docs compute (money from costs.md,
weeks from rollout.md, measurements from performance.md, anything else from some doc); and no
slide holds more than fits on it."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import docs_figures
from tests.conftest import invoke
from tests.test_costs import _totals

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
    if argv[0] == "mkdir":  # `--plot` writes a file; its folder must exist on a fresh clone
        assert argv[1:] == ["-p", "out"]
        return
    if argv[0] == "export":  # the demo's store, where `make demo` says it is
        from magenta_release.cli.demo import DEMO_DIR

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


def test_the_deck_opens_with_the_five_answers_and_ends_with_the_demo() -> None:
    slides = _slides()
    first = slides[0]
    assert re.search(r"^## The five questions", first, flags=re.M)
    rows = [r for r in first.splitlines() if r.startswith("| **")]
    asked = [re.match(r"\| \*\*(.+?)\*\*", r).group(1).lower() for r in rows]  # type: ignore[union-attr]
    for question in ("architecture", "what it provides", "cost", "risks", "timeline"):
        assert any(question in a for a in asked), question
    headings = [re.search(r"^## (.+)$", s, flags=re.M) for s in slides]
    titles = [h.group(1) if h else "" for h in headings]
    assert titles[-2:] == ["Live demo: the script", "Live demo: what it shows"]
    # one slide for each of the five, in the order the first slide asks them
    order = [
        next(i for i, t in enumerate(titles) if key in t.lower())
        for key in ("architecture", "what it must provide", "cost per month", "risks", "timeline")
    ]
    assert order == sorted(order)


# ---- every figure in the deck comes from the docs ------------------------------------------
def _prose(text: str) -> str:
    """The deck without front matter, code blocks and link targets (paths and URLs hold digits
    that are not figures)."""
    body = text.split("\n---\n", 1)[1] if text.startswith("---\n") else text
    body = re.sub(r"```.*?```", "", body, flags=re.S)
    body = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", body)  # images: `w:700` is a size
    body = re.sub(r"`[^`]*`", "", body)
    return re.sub(r"\]\([^)]*\)", "]", body)


def deck_figure_problems(deck: str) -> list[str]:
    prose = _prose(deck)
    problems = []
    totals = set(_totals().values())
    for amount in sorted(docs_figures.amounts(prose)):
        if amount not in totals:
            problems.append(f"${amount}: not a total of costs.md")
    rollout = (ROOT / "docs" / "rollout.md").read_text()
    for weeks in re.findall(r"\b(\w+(?:[\u2013-]\d+)? weeks?)\b", prose):
        if weeks not in rollout or not re.match(r"\d", weeks):
            problems.append(f"{weeks!r}: not what rollout.md says")
    problems += docs_figures.performance_problems(deck, docs_figures.PERFORMANCE.read_text())
    docs = " ".join(
        p.read_text() for p in sorted((ROOT / "docs").glob("*.md")) if p.name != DECK.name
    )
    known = set(re.findall(r"\d[\d,.]*\d|\d", docs))
    for number in re.findall(r"(?<![\w§.])\d[\d,.]*\d|(?<![\w§.])\d", prose):
        if number.rstrip(".,") not in known:
            problems.append(f"{number!r}: in no doc")
    return problems


def test_every_figure_in_the_deck_is_one_the_docs_state() -> None:
    assert deck_figure_problems(DECK.read_text()) == []


@pytest.mark.parametrize(
    "planted",
    [
        "small team: **≈ $31.00 a month**, of which ≈ $18.25 is the load balancer",
        "## Rollout: six weeks",
        "## Rollout: 6 weeks",
        "training takes 1.2 s ([performance.md](performance.md))",
        "ROC-AUC moves by ≈ 0.0137 between runs",
    ],
)
def test_a_planted_wrong_figure_is_caught(planted: str) -> None:
    """Positive controls: the old deck's figures (and a made-up one) fail the check."""
    assert deck_figure_problems(DECK.read_text() + "\n---\n\n" + planted + "\n")


# ---- no slide overflows ---------------------------------------------------------------------
# The deck's own style (front matter): 24 px text on a 1280x720 slide with 48 px padding holds
# about 17 lines of ~100 characters; tables (20 px) a bit more per line.
LINE_BUDGET = 17.0


def slide_lines(slide: str) -> float:
    lines = 0.0
    in_code = False
    for raw in slide.strip().splitlines():
        line = raw.rstrip()
        if line.startswith("```"):
            in_code = not in_code
            lines += 0.5
        elif in_code:
            lines += 0.8
        elif line.startswith("## "):
            lines += 2
        elif re.match(r"\|[\s-]+\|", line):
            continue
        elif line.startswith("|"):
            lines += max(1, math.ceil(len(re.sub(r"\]\([^)]*\)", "]", line)) / 115))
        elif line.startswith("!["):
            width = int(re.search(r"w:(\d+)", line).group(1)) if "w:" in line else 1000  # type: ignore[union-attr]
            lines += width / 70  # the demo plot is about half as tall as wide
        elif line.strip():
            lines += max(1, math.ceil(len(re.sub(r"\]\([^)]*\)", "]", line)) / 100))
        else:
            lines += 0.3
    return lines


@pytest.mark.parametrize("number", range(1, len(_slides()) + 1))
def test_no_slide_holds_more_than_fits(number: int) -> None:
    slide = _slides()[number - 1]
    assert slide_lines(slide) <= LINE_BUDGET, f"slide {number}: {slide_lines(slide):.1f} lines"


def test_an_overfull_slide_would_be_caught() -> None:
    crowded = _slides()[0] + "\n" + "\n".join(f"- point {i}" for i in range(12))
    assert slide_lines(crowded) > LINE_BUDGET


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and shutil.which("npx")), reason="needs chromium and npx")
def test_rendered_slides_leave_their_bottom_margin_empty(tmp_path: Path) -> None:
    """Render with Marp (the version `make slides` pins) and look at each slide's bottom band:
    content that overflows shows there, above the page number."""
    from PIL import Image

    command = ["npx", "--yes", "@marp-team/marp-cli@4.5.1", str(DECK), "--images", "png"]
    command += ["--browser-path", str(CHROMIUM), "-o", str(tmp_path / "slide.png")]
    env = {**os.environ, "CHROME_PATH": str(CHROMIUM)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        pytest.skip(f"marp could not render here: {done.stderr[-300:]}")
    pngs = sorted(tmp_path.glob("slide*.png"))
    assert len(pngs) == len(_slides())
    for png in pngs:
        image = Image.open(png).convert("L")
        width, height = image.size
        band = image.crop((0, height - 40, width - 80, height))  # page number sits at the right
        assert min(band.getdata()) > 200, f"{png.name}: content reaches the bottom margin"


# ---- the demo script runs, in order, on a fresh copy ----------------------------------------
@pytest.mark.slow
def test_the_demo_script_runs_in_order_on_a_fresh_copy(tmp_path: Path) -> None:
    """The live-demo slide, as a presenter would type it in a fresh clone. The copy shares this
    checkout's installed .venv: `make` is told the venv is up to date (`-o`), because a
    reinstall from the copy would point the editable install at a temporary folder."""
    clone = tmp_path / "clone"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "mlruns", "demo", "out", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(ROOT, clone, ignore=ignore)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    script = ["set -u", 'make() { command make -o .venv/.installed "$@"; }']
    for i, argv in enumerate(_demo_commands(), 1):
        command = shlex.join(argv)
        script.append(
            f'{command} >>demo.log 2>&1 || {{ echo "line {i}: {command} exited $?" >&2; exit 99; }}'
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MAGENTA_RELEASE_"))}
    env.update(
        {
            "NO_COLOR": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "DAGSTER_DISABLE_TELEMETRY": "true",
            "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
        }
    )
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = (clone / "demo.log").read_text() if (clone / "demo.log").exists() else ""
    assert done.returncode == 0, done.stderr + log[-3000:]
    assert (clone / "out" / "compare.png").stat().st_size > 0
