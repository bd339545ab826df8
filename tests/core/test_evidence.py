"""The evidence of a proposal, parsed in one place: what it was stored as is what it reads
back as, and text that is not evidence is None, never an exception."""

from __future__ import annotations

import pytest

from magenta_release.core.evidence import Evidence
from magenta_release.core.gates import Gate


def test_stored_evidence_reads_back_and_hashes_the_same() -> None:
    ev = Evidence(
        "r1",
        (Gate("a", True, "ok"), Gate("b", False, "no")),
        {"metrics": {"roc_auc": 0.8}, "rescored": {"rows": 10}},
        3,
        "p" * 64,
        "m" * 64,
    )
    back = Evidence.parse(ev.dumps())
    assert back == ev
    assert back is not None and back.sha256 == ev.sha256
    assert (back.passed, back.failed_gates, back.metrics) == (False, ["b"], {"roc_auc": 0.8})
    assert back.rescored == {"rows": 10}


@pytest.mark.parametrize(
    "text", [None, "", "{not json", "[1, 2]", '"a string"', '{"gates": [{"nope": 1}]}']
)
def test_text_that_is_not_evidence_is_none(text: str | None) -> None:
    assert Evidence.parse(text) is None


def test_evidence_without_gates_never_passes() -> None:
    assert not Evidence("r", ()).passed
