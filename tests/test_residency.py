"""Residency guard: the store's tracking host and artifact location must be on the policy's
allow-lists, checked before anything is written."""

from __future__ import annotations

import pytest

from magenta_release.store import _location_allowed
from tests.conftest import Cli, write_policy


def test_artifact_location_outside_the_allow_list_exits_3_before_writing(cli: Cli) -> None:
    write_policy(
        cli.home,
        residency={
            "allowed_artifact_locations": ["gs://magenta-models-eu"],
            "allowed_tracking_hosts": ["127.0.0.1"],
        },
    )
    before = (cli.home / "mlflow.db").read_bytes()
    result = cli("train", "--rows", "500")
    assert result.exit_code == 3
    assert "is not in the policy's allowed_artifact_locations" in result.stderr
    assert (cli.home / "mlflow.db").read_bytes() == before
    assert not any((cli.home / "artifacts").iterdir())


@pytest.mark.parametrize(
    ("location", "allowed"),
    [
        ("gs://magenta-models-eu/1/abc", True),
        ("gs://magenta-models-eu", True),
        ("gs://magenta-models-eu-copy/1", False),  # a prefix of the name is another bucket
        ("gs://other-bucket/1", False),
        ("s3://magenta-models-eu/1", False),
        ("mlflow-artifacts:/1", True),
        ("file:///srv/magenta/artifacts", True),
    ],
)
def test_bucket_allow_list_matches_whole_bucket_names(location: str, allowed: bool) -> None:
    rules = ("gs://magenta-models-eu", "mlflow-artifacts:", "file:")
    assert _location_allowed(location, rules) is allowed
