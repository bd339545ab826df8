"""Model names that read as another: one key for what a reader of the UI or a terminal sees
(`core.policy.name_key`), so a look-alike of a governed name cannot be governed beside it."""

from __future__ import annotations

import pytest

from magenta_release.core.errors import BadInput
from magenta_release.core.policy import ModelSection, check_not_look_alike, look_alike, name_key

GOVERNED = ["churn-classifier"]


@pytest.mark.parametrize(
    "name",
    [
        "Churn-Classifier",
        "CHURN-CLASSIFIER",
        "churn\u2010classifier",  # HYPHEN
        "churn\u2013classifier",  # EN DASH
        "churn-classifier\u200b",  # ZERO WIDTH SPACE
        "chu\u200drn-classifier",  # ZERO WIDTH JOINER
        "\u0441hurn-classifier",  # CYRILLIC SMALL LETTER ES
        "churn-\u0441lassifi\u0435r",  # Cyrillic es and ie
        "\uff43hurn-classifier",  # FULLWIDTH c (NFKC)
    ],
)
def test_a_look_alike_of_a_governed_name_is_refused(name: str) -> None:
    assert name_key(name) == name_key("churn-classifier")
    assert look_alike(name, GOVERNED) == "churn-classifier"
    with pytest.raises(BadInput, match="reads as 'churn-classifier'"):
        check_not_look_alike(name, GOVERNED)


@pytest.mark.parametrize(
    "name", ["churn-classifier", "churn-classifier-2", "churn", "churn_classifier", "fraud"]
)
def test_the_governed_name_itself_and_other_names_pass(name: str) -> None:
    # positive control: the rule is not "refuse everything near the name"
    assert look_alike(name, GOVERNED) is None
    check_not_look_alike(name, GOVERNED)


def test_a_name_with_invisible_characters_is_refused_by_the_policy() -> None:
    with pytest.raises(ValueError, match="invisible"):
        ModelSection(registered_name="fraud\u200b", experiment="fraud")
    assert ModelSection(registered_name="fraud", experiment="fraud").registered_name == "fraud"
