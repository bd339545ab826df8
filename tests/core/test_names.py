"""Names the tool stores and searches for: a model name reaches MLflow search filters and
names the tool's own registered models, so quotes and the reserved suffixes are refused where
a policy is read, before anything is written."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from magenta_release.core.policy import ModelSection, reserved_name


@pytest.mark.parametrize(
    "name",
    [
        "o'brien-churn",  # used to pass init, then every version listing failed
        'say "churn"',
        "back\\slash",
        "a/b",
        "churn-classifier-audit-log",
        "churn-classifier-release-lock",
        "churn-classifier-release-lock-break-123",
        "churn-classifier-health",
        "magenta-release-policies",
    ],
)
def test_a_name_the_filters_or_the_tool_cannot_use_is_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        ModelSection(registered_name=name)


def test_ordinary_names_pass() -> None:
    assert ModelSection(registered_name="churn-prepaid v2").registered_name == "churn-prepaid v2"
    assert not reserved_name("churn-prepaid")
