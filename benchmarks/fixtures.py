"""Stores for the benchmarks: many runs inserted in bulk, clones of a real run."""

from __future__ import annotations

import random
import sqlite3
import uuid
from pathlib import Path

from magenta_release.core.metrics import HEADLINE_METRICS as METRICS


def bulk_runs(db: Path, experiment_id: str, n: int, seed: int = 0) -> None:
    """Insert n finished runs with random metrics, params and tags (the shape `train` logs),
    straight into the SQLite tables: the client would take minutes for 10,000 runs."""
    rng = random.Random(seed)
    con = sqlite3.connect(db)
    with con:
        runs, latest, metrics, params, tags = [], [], [], [], []
        value: float | str  # a metric's value, then a param's
        for i in range(n):
            run = uuid.uuid4().hex
            start = 1_700_000_000_000 + i * 1000
            runs.append(
                (
                    run,
                    f"bulk-{i}",
                    "LOCAL",
                    "bench",
                    "",
                    "bench",
                    "FINISHED",
                    start,
                    start + 500,
                    "",
                    "active",
                    f"file:///dev/null/{run}",
                    int(experiment_id),
                )
            )
            auc = rng.uniform(0.6, 0.9)
            for key, value in zip(METRICS, (auc, auc / 6, auc * 5, 0.03 - auc / 100), strict=True):
                latest.append((key, value, start, 0, 0, run))
                metrics.append((key, value, start, run, 0, 0))
            for key, value in (
                ("max_depth", str(rng.randint(2, 8))),
                ("seed", "42"),
                ("rows", "100000"),
            ):
                params.append((key, value, run))
            tags.append(("magenta.dataset_sha256", "bench", run))
            tags.append(("mlflow.runName", f"bulk-{i}", run))
        con.executemany(
            "insert into runs (run_uuid, name, source_type, source_name, "
            "entry_point_name, user_id, status, start_time, end_time, "
            "source_version, lifecycle_stage, artifact_uri, experiment_id) values "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?)",
            runs,
        )
        con.executemany("insert into latest_metrics values (?,?,?,?,?,?)", latest)
        con.executemany(
            'insert into metrics ("key", value, timestamp, run_uuid, step, is_nan) '
            "values (?,?,?,?,?,?)",
            metrics,
        )
        con.executemany("insert into params values (?,?,?)", params)
        con.executemany('insert into tags ("key", value, run_uuid) values (?,?,?)', tags)
    con.close()


def clone_run(db: Path, run_id: str, new: str | None = None) -> str:
    """A new run id sharing the run's artifacts, metrics, params and tags (a stand-in for
    another training of the same model: proposing it costs what proposing a real run costs)."""
    new = new or uuid.uuid4().hex
    con = sqlite3.connect(db)
    with con:
        cols = [r[1] for r in con.execute("pragma table_info(runs)")]
        row = dict(
            zip(
                cols,
                con.execute("select * from runs where run_uuid = ?", (run_id,)).fetchone(),
                strict=True,
            )
        )
        row["run_uuid"] = new
        row["start_time"] = int(row["start_time"]) + 1
        con.execute(
            f"insert into runs ({','.join(cols)}) values ({','.join('?' * len(cols))})",
            [row[c] for c in cols],
        )
        for table in ("tags", "params", "latest_metrics", "metrics"):
            tcols = [r[1] for r in con.execute(f"pragma table_info({table})")]
            quoted = ",".join(f'"{c}"' for c in tcols)
            picks = ",".join("?" if c == "run_uuid" else f'"{c}"' for c in tcols)
            con.execute(
                f"insert into {table} ({quoted}) select {picks} from {table} where run_uuid = ?",
                (new, run_id),
            )
    con.close()
    return new


def write_churn_parquet(
    path: Path, rows: int, *, seed: int = 2024, chunk: int = 100_000, vary_seed: bool = False
) -> Path:
    """A parquet file of `rows` generator rows (identifiers, features, label), written chunk by
    chunk so that the file never sits in memory as a whole. The generator draws at most 900,000
    accounts, so bigger files are tiles of `chunk` rows with fresh identifiers: account ids
    shifted by 1,000,000 per tile, customer ids prefixed with the tile number. `vary_seed`
    draws each tile with its own seed (distinct rows, for training); otherwise every tile has
    the same feature values (enough for scoring, and cheaper)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from magenta_release.core import synthetic as data

    base = None if vary_seed else data.generate(seed, min(chunk, rows)).table
    writer = None
    try:
        for tile, start in enumerate(range(0, rows, chunk)):
            n = min(chunk, rows - start)
            frame = data.generate(seed + tile, n).table if base is None else base.head(n)
            frame = frame.assign(
                rating_account_id=frame["rating_account_id"] + tile * 1_000_000,
                customer_id=f"{tile}-" + frame["customer_id"].astype(str),
            )
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
