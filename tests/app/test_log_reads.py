"""Every command reads the audit log once: the log is the record a decision is made on, and
reading it again (a round trip to the server, a chain of 20,000 events verified again) is
where the time went. Counted by wrapping the gateway's one read of a registered model's tags."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import BOB, Trained

LOG = "churn-classifier-audit-log"


@pytest.fixture
def log_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the audit logs read through the gateway while the test runs."""
    from magenta_release.io.store.tags import TagStorage

    reads: list[str] = []
    real = TagStorage.model_tags_or_none

    def counting(self: TagStorage, name: str) -> dict[str, str] | None:
        if name.endswith("-audit-log"):
            reads.append(name)
        return real(self, name)

    monkeypatch.setattr(TagStorage, "model_tags_or_none", counting)
    return reads


def _context(t: Trained, by: str | None = None) -> Any:
    from magenta_release.app.context import Context
    from magenta_release.core.settings import Settings

    return Context.open(Settings(home=t.cli.home, tracking_uri=None), by=by)


def test_one_approve_reads_the_log_once(released: Trained, log_reads: list[str]) -> None:
    from magenta_release.app.decide import approve

    done = approve(_context(released, BOB), 2, reason="better on the same rows")
    assert (done.champion, done.previous) == (2, 1)
    assert log_reads == [LOG]


@pytest.mark.parametrize("command", ["status", "history", "reject"])
def test_a_read_or_a_reject_reads_the_log_once(
    released: Trained, log_reads: list[str], command: str
) -> None:
    from magenta_release.app.decide import reject
    from magenta_release.app.status import history, status

    ctx = _context(released, BOB)
    if command == "status":
        assert status(ctx)["challenger"]["version"] == 2
    elif command == "history":
        assert [e.action for e in history(ctx)][:1] == ["propose"]
    else:
        assert reject(ctx, 2, reason="not now").status == "rejected"
    assert log_reads == [LOG]


def test_a_refused_approve_reads_once_and_writes_nothing(
    released: Trained, log_reads: list[str]
) -> None:
    """The embedded lock is the kernel's: taking it first writes nothing, so a refusal
    found under it still leaves the store byte for byte as it was."""
    from magenta_release.app.decide import approve
    from magenta_release.core.errors import PolicyRefused
    from tests.conftest import CAROL, snapshot

    before = snapshot(released.cli.home)
    with pytest.raises(PolicyRefused, match="not in `approvers`"):
        approve(_context(released, CAROL), 2, reason="carol is no approver")
    assert log_reads == [LOG]
    assert snapshot(released.cli.home) == before
