"""Optional libraries are named by the extra that installs them: a use that needs one that is
missing fails with one line saying what to install (exit 2), never a traceback."""

from __future__ import annotations

import pytest

from magenta_release.core import extras
from magenta_release.core.errors import BadInput, ReleaseError


def test_require_names_the_extra_of_a_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "no_such_module_24", ("no-such-dist", "gcp"))
    with pytest.raises(extras.MissingExtra) as caught:
        extras.require("no_such_module_24", "reading gs:// tables")
    assert caught.value.exit_code == BadInput.exit_code == 2
    assert isinstance(caught.value, ReleaseError)
    assert str(caught.value) == (
        "reading gs:// tables needs no-such-dist, which is not installed; "
        "pip install 'magenta-release[gcp]'"
    )


def test_require_passes_for_an_installed_library() -> None:
    extras.require("numpy", "anything")  # positive control: installed, no error
    assert extras.installed("numpy")
    assert not extras.installed("no_such_module_24.sub")  # a missing parent is not an error


def test_the_cli_extra_points_at_its_own_environment() -> None:
    text = extras.message("typer", "the magenta-release command")
    assert "uv tool install 'magenta-release[cli]'" in text


@pytest.mark.parametrize(
    ("missing", "module"),
    [("typer", "typer"), ("google", "google.auth"), ("dagster._core", "dagster"), ("six", None)],
)
def test_missing_from_finds_the_optional_module(missing: str, module: str | None) -> None:
    assert extras.missing_from(ModuleNotFoundError(name=missing)) == module
