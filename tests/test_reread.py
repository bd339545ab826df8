"""Propose re-reads a run's evaluation rows by streaming its source: the rows, their order,
their types and both digests are exactly what reading the whole table gives (`load` +
`split`, the path every recorded digest was computed on), for parquet files and folders and
DuckDB tables, with missing values where the whole table converts them differently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from magenta_release.core import contract as dc
from magenta_release.core.contract import DataContract
from magenta_release.core.synthetic import generate
from magenta_release.io import datasets, sources

CONTRACT = DataContract()


def _table(rows: int = 6000) -> pd.DataFrame:
    frame = generate(5, rows).table
    rng = np.random.default_rng(0)
    # an integer column with a few missing values, late in the table: whole-table reads make
    # it float64, batches without a missing value would keep it int64
    counts = pd.array(rng.integers(0, 9, rows), dtype="Int64")
    counts[rows - 3] = pd.NA
    return frame.assign(n_devices=counts, tenure_years=rng.integers(0, 30, rows))


def _write(frame: pd.DataFrame, tmp: Path, kind: str) -> str:
    if kind == "file":
        path = tmp / "t.parquet"
        # small row groups: the scan sees many batches, the missing value in one of them
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_size(500))
        return str(path)
    if kind == "folder":
        folder = tmp / "parts"
        folder.mkdir()
        for i, start in enumerate(range(0, len(frame), 2500)):
            part = frame.iloc[start : start + 2500]
            pq.write_table(
                pa.Table.from_pandas(part, preserve_index=False), folder / f"{i}.parquet"
            )
        return str(folder)
    return sources.write_duckdb(frame, tmp / "a.duckdb", "features")


def row_size(n: int) -> int:
    return n


def _evidence(uri: str) -> datasets.Evidence:
    table = datasets.load(uri, CONTRACT)
    return datasets.evidence(table, datasets.split(table, CONTRACT), CONTRACT)


@pytest.mark.parametrize("kind", ["file", "folder", "duckdb"])
def test_streamed_evaluation_rows_equal_the_whole_table_split(kind: str, tmp_path: Path) -> None:
    uri = _write(_table(), tmp_path, kind)
    table = datasets.load(uri, CONTRACT)
    parts = datasets.split(table, CONTRACT)
    ev = datasets.evidence(table, parts, CONTRACT)
    source = datasets.canonical(uri, "source")

    scanned = datasets._scan(source, CONTRACT)
    assert scanned is not None  # a positive control: the streaming path is the one tested
    assert scanned.digest == ev.digest
    assert scanned.eval_digest == ev.eval_digest
    pd.testing.assert_frame_equal(scanned.frame, parts.eval_frame)
    assert (scanned.y == parts.y_eval).all()
    assert scanned.frame["n_devices"].dtype == parts.eval_frame["n_devices"].dtype

    rows = datasets.reread(ev)
    assert not isinstance(rows, str), rows
    pd.testing.assert_frame_equal(rows[0], parts.eval_frame)


def test_a_changed_row_anywhere_is_seen(tmp_path: Path) -> None:
    frame = _table()
    uri = _write(frame, tmp_path, "file")
    ev = _evidence(uri)
    training_row = int(np.flatnonzero(~dc.evaluation_mask(frame, CONTRACT))[-1])
    edited = frame.copy()
    edited.loc[training_row, "age"] += 1  # a training row: the evaluation rows are the same
    _write(edited, tmp_path, "file")
    found = datasets.reread(ev)
    assert isinstance(found, str) and "changed since training" in found, found


WITH_FLAG = DataContract(categorical=("smartphone_brand_group", "flag"))


@pytest.mark.parametrize(
    "flag",
    [
        lambda f: (
            f["rating_account_id"]
            .map(lambda v: f"2024-{v % 12 + 1:02d}-01")
            .astype("datetime64[s]")
        ),  # a date: read whole
        lambda f: pd.Series(f["age"] > 40, dtype=object).where(f.index != 5),  # one missing
        lambda f: (f["age"] > 40).where(f.index != 5).astype("boolean"),  # nullable boolean
    ],
    ids=["date", "boolean-missing-once", "nullable-boolean"],
)
def test_columns_that_may_convert_unlike_the_whole_table_give_the_same_rows(
    flag: object, tmp_path: Path
) -> None:
    frame = _table()
    uri = _write(frame.assign(flag=flag(frame)), tmp_path, "file")  # type: ignore[operator]
    table = datasets.load(uri, WITH_FLAG)
    parts = datasets.split(table, WITH_FLAG)
    ev = datasets.evidence(table, parts, WITH_FLAG)
    scanned = datasets._scan(datasets.canonical(uri, "source"), WITH_FLAG)
    if scanned is not None:  # streamed only when that is exact
        pd.testing.assert_frame_equal(scanned.frame, parts.eval_frame)
    rows = datasets.reread(ev)
    assert not isinstance(rows, str), rows
    pd.testing.assert_frame_equal(rows[0], parts.eval_frame)
