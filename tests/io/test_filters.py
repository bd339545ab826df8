"""A value reaches an MLflow search filter as a literal it cannot end early."""

from __future__ import annotations

import pytest

from magenta_release.core.errors import BadInput
from magenta_release.io.store.registry import filter_literal


def test_a_value_is_quoted_with_the_quote_it_does_not_hold() -> None:
    assert filter_literal("churn") == "'churn'"
    assert filter_literal("o'brien") == '"o\'brien"'
    with pytest.raises(BadInput, match="both quote characters"):
        filter_literal("""o'brien "x\"""")


def test_an_old_store_model_with_a_quote_still_lists_its_versions(tmp_path: object) -> None:
    """A name with a quote (accepted before this release) is searched with the other quote."""
    from pathlib import Path

    from mlflow import MlflowClient

    from magenta_release.core.settings import Settings
    from magenta_release.io.store import Store, init_local_store

    settings = Settings(home=Path(str(tmp_path)) / "mlruns", tracking_uri=None)
    init_local_store(settings)
    store = Store.open(settings)
    client: MlflowClient = store.client
    client.create_registered_model("o'brien")
    run = client.create_run(client.create_experiment("e"))
    client.create_model_version("o'brien", f"runs:/{run.info.run_id}/m", run_id=run.info.run_id)
    assert [v.version for v in store.registry("o'brien").versions()] == [1]
