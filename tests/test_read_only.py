"""Read commands never write, and embedded mode shouts when the registry and the audit log
disagree (an alias moved with a plain MLflow client): exit 3 naming the move, nothing served,
nothing repaired until someone runs `repair --reason`."""

from __future__ import annotations

from pathlib import Path

from magenta_release.cli.demo import write_customers
from tests.conftest import ALICE, Trained, snapshot


def _reads(t: Trained, customers: Path, out: Path) -> list[tuple[str, ...]]:
    run = t.runs["good"]
    return [
        ("status",),
        ("status", "--json"),
        ("history",),
        ("history", "--json", "--limit", "5"),
        ("runs",),
        ("runs", "--json"),
        ("compare", run, t.runs["other"]),
        ("compare", "--last", "3", "--json"),
        ("show", "1"),
        ("show", "2", "--json"),
        ("card", "1"),
        ("card", "2", "--json"),
        ("audit", "verify"),
        ("audit", "verify", "--json"),
        ("gc", "--older-than", "0"),
        ("gc", "--older-than", "0", "--json"),
        ("predict", "--input", str(customers), "--output", str(out)),
        ("policy", "show"),
        ("policy", "show", "--json"),
        ("policy", "history", "--model", "churn-classifier"),
        ("status", "--model", "churn-classifier", "--json"),
        ("init",),  # on an initialised store: nothing to do
    ]


def test_every_read_command_leaves_the_store_byte_identical(
    released: Trained, tmp_path: Path
) -> None:
    customers = write_customers(tmp_path / "customers.parquet", seed=5, rows=300)
    before = snapshot(released.cli.home)
    for args in _reads(released, customers, tmp_path / "scores.parquet"):
        result = released.cli(*args, by=ALICE)
        assert result.exit_code == 0, (args, result.stderr)
        assert snapshot(released.cli.home) == before, f"{args} wrote to the store"


def test_an_out_of_band_alias_move_is_an_alert_until_repaired(
    released: Trained, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{released.cli.home / 'mlflow.db'}"
    # What a user with a plain MLflow client can do in embedded mode: move @champion to the
    # pending version 2, which nobody approved.
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        "churn-classifier", "champion", "2"
    )
    before = snapshot(released.cli.home)
    status = released.cli("status", by=ALICE)
    assert status.exit_code == 3
    assert "integrity alert: @champion is 2 but the log says 1" in status.stderr
    customers = write_customers(tmp_path / "customers.parquet", seed=5, rows=300)
    served = released.cli(
        "predict", "--input", str(customers), "--output", str(tmp_path / "o.parquet"), by=ALICE
    )
    assert served.exit_code == 3 and "integrity alert" in served.stderr
    assert not (tmp_path / "o.parquet").exists()
    refused = released.cli("approve", "2", "--reason", "x", "--yes", by="bob")
    assert refused.exit_code == 3  # no write command builds on a registry that disagrees
    assert snapshot(released.cli.home) == before  # reads (and refusals) wrote nothing

    repaired = released.cli.json("repair", "--reason", "alias moved by hand", by=ALICE)
    assert any("@champion is 2 but the log says 1" in f for f in repaired["found"])
    assert released.cli.json("audit", "verify")["ok"] is True
    assert released.cli.json("status")["champion"]["version"] == 1
    last = released.cli.json("history", "--limit", "1")["events"][0]
    assert (last["action"], last["actor"], last["reason"]) == (
        "repair",
        ALICE,
        "alias moved by hand",
    )
    assert last["details"]["found"]
