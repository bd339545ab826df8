"""Names of people: one person however it is typed; look-alikes and control characters refused."""

from __future__ import annotations

import pytest

from magenta_release.core.errors import BadInput
from magenta_release.core.identity import MAX_LENGTH, normalise, same
from tests.conftest import RELEASE_MANAGER

# "release-manager" in fullwidth forms (U+FF01..U+FF5E), written as a mapping to keep the
# source ASCII
FULLWIDTH = RELEASE_MANAGER.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


@pytest.mark.parametrize(
    "typed",
    [
        "release-manager",
        "Release-Manager",
        "RELEASE-MANAGER",
        "  release-manager\t",
        "\u00a0release-manager ",  # no-break space is trimmed too
        FULLWIDTH,  # NFKC maps fullwidth forms to ASCII
    ],
)
def test_one_person_however_typed(typed: str) -> None:
    assert normalise(typed) == RELEASE_MANAGER
    assert same(typed, RELEASE_MANAGER)


def test_case_folding_is_full_not_lower() -> None:
    assert normalise("Straße") == "strasse"
    assert same("STRASSE", "straße")


def test_nfkc_joins_composed_and_decomposed_letters() -> None:
    assert normalise("Jose\u0301") == normalise("Jos\u00e9") == "jos\u00e9"


def test_different_people_differ() -> None:
    assert not same("alice", "alice2")
    assert not same("alice", "al ice")


@pytest.mark.parametrize(
    ("typed", "needle"),
    [
        ("r\u0435lease-manager", "mixes scripts (CYRILLIC, LATIN)"),  # Cyrillic e
        ("\u0430lice", "mixes scripts"),  # Cyrillic a
        ("alice\x00", "control characters"),
        ("ali\u200bce", "control characters"),  # zero-width space (format, Cf)
        ("alice\u202e", "control characters"),  # right-to-left override
        ("a\nb", "control characters"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("a" * (MAX_LENGTH + 1), f"longer than {MAX_LENGTH}"),
    ],
)
def test_look_alikes_and_junk_are_refused(typed: str, needle: str) -> None:
    with pytest.raises(BadInput) as caught:
        normalise(typed, what="--by")
    assert needle in str(caught.value)
    assert str(caught.value).startswith("--by")


def test_one_script_other_than_latin_is_a_name() -> None:
    assert normalise("Алиса") == "алиса"
    assert normalise("a" * MAX_LENGTH) == "a" * MAX_LENGTH
