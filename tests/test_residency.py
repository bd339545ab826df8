"""Residency guard: the store's tracking host and artifact location must be on the policy's
allow-lists, checked before anything is written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from magenta_release.io.store.residency import _location_allowed
from tests.conftest import Cli, snapshot, write_policy


def test_artifact_location_outside_the_allow_list_exits_3_before_writing(
    cli: Cli, tmp_path: Path
) -> None:
    policy = write_policy(
        tmp_path / "edit",
        residency={
            "allowed_artifact_locations": ["gs://magenta-models-eu"],
            "allowed_tracking_hosts": ["127.0.0.1"],
        },
    )
    before = snapshot(cli.home)
    # a policy the store already breaks is refused before it is stored
    result = cli("policy", "set", str(policy), "--reason", "move to GCS", by="release-manager")
    assert result.exit_code == 3
    assert "is not in the policy's allowed_artifact_locations" in result.stderr
    assert snapshot(cli.home) == before
    # and a store whose experiment points outside the stored policy's list writes nothing
    con = sqlite3.connect(cli.home / "mlflow.db")
    with con:
        con.execute(
            "update experiments set artifact_location = 's3://us-bucket/1' where name = 'churn'"
        )
    con.close()
    before = snapshot(cli.home)
    result = cli("train", "--rows", "500")
    assert result.exit_code == 3
    assert "is not in the policy's allowed_artifact_locations" in result.stderr
    assert snapshot(cli.home) == before


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
