"""The business-value gate against a case computed by hand."""

from __future__ import annotations

import numpy as np

from magenta_release.core.gates import campaign_value, value_gate
from magenta_release.core.policy import Policy, ValueSection

VALUE = ValueSection(
    campaign_fraction=0.5,
    contact_cost=1.0,
    monthly_revenue=10.0,
    retention_months=2.0,
    offer_success_rate=0.5,
)


def test_campaign_value_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    a = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])  # top 3: rows 0, 1, 2 -> two churners
    b = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])  # top 3: rows 3, 4, 5 -> one churner
    # a churner kept is worth 0.5 * 10 * 2 = 10; three calls cost 3
    assert campaign_value(y, a, 3, VALUE) == 2 * 10.0 - 3 * 1.0
    assert campaign_value(y, b, 3, VALUE) == 1 * 10.0 - 3 * 1.0


def test_value_gate_reports_difference_overlap_and_blocks_only_when_asked() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    a = np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3])
    b = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])
    policy = Policy(value=VALUE)
    gate, evidence = value_gate(policy, y, b, a)  # the challenger is the worse one
    assert (evidence["challenger"], evidence["champion"], evidence["diff"]) == (7.0, 17.0, -10.0)
    assert evidence["changed"] == 3  # no customer in common: all three calls change
    assert gate.passed  # reported, not blocking
    assert "of 3 customers to call, 3 change" in gate.detail
    blocking = Policy(value=VALUE.model_copy(update={"blocking": True}))
    assert not value_gate(blocking, y, b, a)[0].passed
    assert value_gate(blocking, y, a, b)[0].passed  # the better one passes
