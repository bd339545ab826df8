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
