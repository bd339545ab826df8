"""One measured job per process, so that its peak RSS is its own: `benchmarks.run` starts
`python -m benchmarks.worker JOB ...` and reads the child's `ru_maxrss` from `os.wait4`
(see `benchmarks.measure`). Each job prints one JSON line: the seconds of the measured call
(imports and store opening excluded) and the rows it handled.

Jobs:
    predict HOME INPUT OUTPUT      magenta_release.app.predict.predict (streams record batches)
    predict-raw HOME INPUT         read the parquet into pandas, pipeline.predict_proba once
    train HOME DATA                magenta_release.app.train.train(store, data=DATA)
    train-raw DATA                 pandas read of the parquet + the same pipeline's fit
    train-data HOME DATA           train's data phase alone: read, validate, split, digests
    read-raw DATA                  pandas read_parquet of the whole file (its baseline)
    propose HOME RUN               magenta_release.app.propose.propose (re-reads the rows)
    health HOME DATA               magenta_release.app.health.check on a labelled table
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from magenta_release.core.telemetry import disable_telemetry


def _store(home: str) -> Any:
    from magenta_release.app.context import Context
    from magenta_release.core.settings import Settings

    return Context.open(Settings(home=Path(home)))


def predict(home: str, source: str, output: str) -> dict[str, float]:
    from magenta_release.app.predict import predict as run_predict

    store = _store(home)
    start = time.perf_counter()
    done = run_predict(store, source, Path(output))
    return {"seconds": time.perf_counter() - start, "rows": done.rows}


def predict_raw(home: str, source: str) -> dict[str, float]:
    """The in-memory baseline: the champion's pipeline, the whole frame, one predict_proba."""
    import tempfile

    import pandas as pd

    from magenta_release.app.services import models

    store = _store(home)
    version = store.registry.alias("champion")
    with tempfile.TemporaryDirectory(prefix="magenta-bench-") as tmp:
        verified = models.fetch(store, version, Path(tmp))
        pipeline = verified.load()
        names = [n for n, _ in verified.inputs]
    start = time.perf_counter()
    frame = pd.read_parquet(source, columns=names)
    loaded = time.perf_counter()
    pipeline.predict_proba(frame)
    end = time.perf_counter()
    return {"seconds": end - loaded, "read_seconds": loaded - start, "rows": len(frame)}


def _warm_training_imports() -> None:
    """What `train` imports lazily, imported before the clock starts: the comparison is the
    work, not the import cost (the process wall time, reported beside it, has both)."""
    import matplotlib.figure
    import mlflow.sklearn
    import pandera.pandas
    import sklearn.metrics
    import skops.io
    import xgboost

    del matplotlib, mlflow, pandera, skops, sklearn, xgboost


def train(home: str, source: str) -> dict[str, Any]:
    from magenta_release.app.train import train as run_train

    store = _store(home)
    _warm_training_imports()
    start = time.perf_counter()
    result = run_train(store, data=source, seed=7)
    return {"seconds": time.perf_counter() - start, **result.seconds, "run_id": result.run_id}


def train_raw(source: str) -> dict[str, float]:
    """The baseline: pandas reads the file, the same pipeline fits as many rows as ours
    trains on (no contract validation, no hashed split, no evaluation, no tracking)."""
    import pandas as pd

    from magenta_release.core.contract import DataContract
    from magenta_release.core.pipeline import build_pipeline

    contract = DataContract()
    _warm_training_imports()
    start = time.perf_counter()
    frame = pd.read_parquet(source)
    features = contract.feature_columns(list(frame.columns))
    numeric = [c for c in features if c not in contract.categorical]
    pipeline = build_pipeline({}, 7, numeric, list(contract.categorical))
    read = time.perf_counter()
    rows = frame.iloc[: int(len(frame) * (1 - contract.evaluation_fraction))]  # as many as ours
    pipeline.fit(rows.loc[:, features], rows[contract.target])
    end = time.perf_counter()
    return {"seconds": end - start, "data": read - start, "fit": end - read, "rows": len(frame)}


def train_data(home: str, source: str) -> dict[str, float]:
    """What `train` does before the fit (app/train.py), nothing else: the data phase alone, so
    that its peak memory is its own."""
    from magenta_release.io import datasets as dataset

    store = _store(home)
    contract = store.policy.data
    import pandera.pandas  # imported lazily by validation: not part of the work

    del pandera
    start = time.perf_counter()
    table = dataset.load(source, contract)
    parts = dataset.split(table, contract)
    dataset.evidence(table, parts, contract)
    return {"seconds": time.perf_counter() - start, "rows": table.rows}


def read_raw(source: str) -> dict[str, float]:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_parquet(source)
    return {"seconds": time.perf_counter() - start, "rows": len(frame)}


def propose(home: str, run_id: str) -> dict[str, float]:
    from magenta_release.app.context import Context
    from magenta_release.app.propose import propose as run_propose
    from magenta_release.core.settings import Settings

    ctx = Context.open(Settings(home=Path(home)), by="data-scientist")
    _warm_training_imports()
    start = time.perf_counter()
    done = run_propose(ctx, run_id)
    return {"seconds": time.perf_counter() - start, "version": float(done.version)}


def health(home: str, source: str) -> dict[str, float]:
    from magenta_release.app.health import check

    ctx = _store(home)
    _warm_training_imports()
    start = time.perf_counter()
    done = check(ctx, source)
    return {"seconds": time.perf_counter() - start, "rows": done.rows}


JOBS: dict[str, Callable[..., dict[str, Any]]] = {
    "predict": predict,
    "predict-raw": predict_raw,
    "train": train,
    "train-raw": train_raw,
    "train-data": train_data,
    "read-raw": read_raw,
    "propose": propose,
    "health": health,
}


def main(argv: list[str]) -> int:
    disable_telemetry()
    job, *args = argv
    sys.stdout.write(json.dumps(JOBS[job](*args)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
