"""Names of people, compared as people mean them: `Release-Manager`, `"release-manager "` and
`release-manager` are one person. A name mixing scripts (`release-manager` typed with one
Cyrillic letter) or holding control characters is refused, since it can only be there to look
like someone else."""

from __future__ import annotations

import unicodedata

from magenta_release.core.errors import BadInput

MAX_LENGTH = 200


def normalise(name: str, what: str = "--by") -> str:
    """NFKC, trimmed and case-folded; BadInput for an empty name, control characters or a
    mix of scripts."""
    text = unicodedata.normalize("NFKC", name).strip()
    if not text:
        raise BadInput(f"{what} is empty; give the name of the person acting")
    if len(text) > MAX_LENGTH:
        raise BadInput(f"{what} is longer than {MAX_LENGTH} characters; use a person's name")
    if any(unicodedata.category(c).startswith("C") for c in text):
        raise BadInput(f"{what} {text!r} contains control characters; type a plain name")
    scripts = {_script(c) for c in text if c.isalpha()}
    if len(scripts) > 1:
        raise BadInput(
            f"{what} {text!r} mixes scripts ({', '.join(sorted(scripts))}); a name that looks "
            "like another person's is refused — type it in one script"
        )
    return text.casefold()


def same(a: str, b: str) -> bool:
    """True when two names are the same person."""
    return normalise(a) == normalise(b)


def _script(char: str) -> str:
    """The Unicode script of a letter, from its name (LATIN, CYRILLIC, GREEK, ...)."""
    name = unicodedata.name(char, "UNKNOWN")
    return name.split(" ")[0]
