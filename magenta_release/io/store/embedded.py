"""Reads of the embedded store without MLflow: the questions every command asks (the audit
log's tags, the versions and aliases, a run, the runs of an experiment, a policy's text),
answered from the SQLite file with the standard library's `sqlite3`.

Why: building `MlflowClient` on a `sqlite://` URI imports MLflow and its SQLAlchemy stores
(SQLAlchemy, alembic, mako: 1.5 s on this machine, more than `import mlflow`), and a read
command's own work is a few milliseconds of SQL. `EmbeddedClient` answers those calls itself
and hands every other call (every write, every read it does not know, any filter it does not
parse) to a real `MlflowClient`, built on first use. It returns objects with the attributes of
MLflow's entities that this package reads, and it only ever opens the database read-only.

It reads the schema of one MLflow migration (`SCHEMA_REVISION`); a database at any other
revision gets the MLflow client for everything (`Store.connect`). Its answers are
tested against `MlflowClient`'s on the same store (tests/io/test_embedded_reads.py), so an
MLflow upgrade that changes a table fails there before it reaches a user."""

from __future__ import annotations

import math
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote, urlparse

from magenta_release.io.store.errors import NotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient

# The alembic revision of the schema these queries were written against (MLflow 3.17's head;
# the template database is at it). Another revision: the MLflow client answers everything.
SCHEMA_REVISION = "dc11669786a5"
WORKSPACE = "default"  # MLflow's workspace when none is configured (the embedded store)
DELETED_VERSION = "Deleted_Internal"  # MLflow's stage of a deleted model version
BUSY_MS = 20_000  # as long as MLflow's SQLite engine waits for a writer


# ---- what the reads return: the entity attributes this package uses ------------------------
@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    creation_timestamp: int
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, int]


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    creation_timestamp: int
    description: str | None
    source: str
    run_id: str
    tags: dict[str, str]
    aliases: list[str]


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source_type: str
    source: str


@dataclass(frozen=True)
class DatasetInput:
    dataset: Dataset
    tags: list[RunTag]


@dataclass(frozen=True)
class RunInputs:
    dataset_inputs: list[DatasetInput]


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    user_id: str


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData
    inputs: RunInputs


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None


class Page(list[Any]):
    """A page of results and the token of the next (MLflow's PagedList)."""

    def __init__(self, items: list[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token


# ---- the filters it answers itself; anything else goes to MLflow ---------------------------
_RUN_FILTERS = {
    "": ("", ()),
    "attributes.status = 'RUNNING'": ("and r.status = ?", ("RUNNING",)),
    "attributes.status = 'FINISHED'": ("and r.status = ?", ("FINISHED",)),
    "attributes.status != 'RUNNING'": ("and r.status != ?", ("RUNNING",)),
}
_DEFAULT_RUN_ORDER = (None, ["attributes.start_time DESC"])


@dataclass
class EmbeddedClient:
    """`MlflowClient` for the embedded store: reads in `sqlite3`, the rest delegated (see the
    module docstring). `run_ids_with_prefix` is its own: an indexed lookup MLflow lacks."""

    db: Path
    tracking_uri: str
    build: Callable[[], MlflowClient]
    _mlflow: MlflowClient | None = field(default=None, repr=False)
    _con: sqlite3.Connection | None = field(default=None, repr=False)

    # -- delegation --------------------------------------------------------------------------
    @property
    def mlflow(self) -> MlflowClient:
        """The real client, built on first use (writes, and reads not answered here)."""
        if self._mlflow is None:
            self._mlflow = self.build()
        return self._mlflow

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.mlflow, name)

    # -- the connection ----------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot: a read transaction on a read-only connection (opened once;
        between reads it holds no lock, so writers are never blocked by it)."""
        if self._con is None:
            uri = f"file:{quote(str(self.db))}?mode=ro"
            con = sqlite3.connect(
                uri, uri=True, timeout=BUSY_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._con = con
        con = self._con
        con.execute("begin")
        try:
            yield con
        finally:
            con.execute("commit")

    # -- experiments -------------------------------------------------------------------------
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._read() as con:
            row = con.execute(
                "select experiment_id, name, artifact_location, lifecycle_stage from experiments "
                "where name = ? and workspace = ?",
                (name, WORKSPACE),
            ).fetchone()
        if row is None:
            return None
        return Experiment(str(row[0]), row[1], row[2] or "", row[3] or "")

    # -- registered models -------------------------------------------------------------------
    def get_registered_model(self, name: str) -> RegisteredModel:
        with self._read() as con:
            row = con.execute(
                "select name, creation_time, description from registered_models "
                "where name = ? and workspace = ?",
                (name, WORKSPACE),
            ).fetchone()
            if row is None:
                raise NotFound(f"Registered Model with name={name} not found")
            tags = dict(
                con.execute(
                    'select "key", value from registered_model_tags where name = ? and '
                    "workspace = ?",
                    (name, WORKSPACE),
                ).fetchall()
            )
            aliases = dict(
                con.execute(
                    "select alias, version from registered_model_aliases where name = ? and "
                    "workspace = ?",
                    (name, WORKSPACE),
                ).fetchall()
            )
        return RegisteredModel(row[0], int(row[1] or 0), row[2], tags, aliases)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> Any:
        """Names only (`name LIKE '%suffix'` or everything), ordered by name; each model's
        tags and aliases are read when asked for (`governed_models` never asks)."""
        like = _like_suffix(filter_string)
        if order_by or like is None:
            return self.mlflow.search_registered_models(
                filter_string=filter_string,
                max_results=max_results,
                order_by=order_by,
                page_token=page_token,
            )
        offset = int(page_token or 0)
        with self._read() as con:
            names = [
                r[0]
                for r in con.execute(
                    "select name from registered_models where workspace = ? and "
                    "(? = '' or substr(name, -length(?)) = ?) order by name limit ? offset ?",
                    (WORKSPACE, like, like, like, max_results + 1, offset),
                ).fetchall()
            ]
        token = str(offset + max_results) if len(names) > max_results else None
        return Page([_LazyModel(self, n) for n in names[:max_results]], token)

    # -- model versions ----------------------------------------------------------------------
    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        with self._read() as con:
            found = self._versions(con, "and v.name = ? and v.version = ?", (name, int(version)))
            if not found:
                raise NotFound(f"Model Version (name={name}, version={version}) not found")
            aliases = [
                r[0]
                for r in con.execute(
                    "select alias from registered_model_aliases where name = ? and version = ? "
                    "and workspace = ?",
                    (name, int(version), WORKSPACE),
                ).fetchall()
            ]
        v = found[0]
        return ModelVersion(
            v.name,
            v.version,
            v.creation_timestamp,
            v.description,
            v.source,
            v.run_id,
            v.tags,
            aliases,
        )

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> Any:
        """`name = '...'` or no filter (every model's versions), newest first."""
        name = _name_equals(filter_string)
        if order_by or (filter_string and name is None):
            return self.mlflow.search_model_versions(
                filter_string, max_results, order_by, page_token
            )
        offset = int(page_token or 0)
        where, args = ("and v.name = ?", (name,)) if name is not None else ("", ())
        with self._read() as con:
            found = self._versions(
                con, where, args, limit=f"limit {int(max_results) + 1} offset {offset}"
            )
        token = str(offset + max_results) if len(found) > max_results else None
        return Page(found[:max_results], token)

    def _versions(
        self, con: sqlite3.Connection, where: str, args: tuple[Any, ...], limit: str = ""
    ) -> list[ModelVersion]:
        rows = con.execute(
            "select v.name, v.version, v.creation_time, v.description, v.source, v.run_id "  # noqa: S608
            "from model_versions v where v.workspace = ? and v.current_stage != ? "
            f"{where} order by v.last_updated_time desc, v.name, v.version desc {limit}",
            (WORKSPACE, DELETED_VERSION, *args),
        ).fetchall()
        tags: dict[tuple[str, int], dict[str, str]] = {}
        if rows:
            names = sorted({r[0] for r in rows})
            marks = ",".join("?" * len(names))
            for n, ver, key, value in con.execute(
                'select name, version, "key", value from model_version_tags '  # noqa: S608
                f"where workspace = ? and name in ({marks})",
                (WORKSPACE, *names),
            ):
                tags.setdefault((n, int(ver)), {})[key] = value
        return [
            ModelVersion(
                r[0],
                int(r[1]),
                int(r[2] or 0),
                r[3],
                r[4] or "",
                r[5] or "",
                tags.get((r[0], int(r[1])), {}),
                [],
            )
            for r in rows
        ]

    # -- runs --------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        with self._read() as con:
            found = self._runs(con, "r.run_uuid = ?", (run_id,))
        if not found:
            raise NotFound(f"Run with id={run_id} not found")
        return found[0]

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        run_view_type: int = 1,
        max_results: int = 1000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> Any:
        """Active runs of the experiments, newest first, for the few filters the commands use;
        every other filter or order is MLflow's."""
        known = _RUN_FILTERS.get((filter_string or "").strip())
        if known is None or run_view_type != 1 or order_by not in _DEFAULT_RUN_ORDER:
            return self.mlflow.search_runs(
                experiment_ids,
                filter_string,
                run_view_type,
                max_results,
                order_by,
                page_token,
            )
        offset = int(page_token or 0)
        ids = [int(e) for e in experiment_ids]
        marks = ",".join("?" * len(ids))
        with self._read() as con:
            found = self._runs(
                con,
                f"r.experiment_id in ({marks}) and r.lifecycle_stage = 'active' {known[0]}",
                (*ids, *known[1]),
                order="order by r.start_time desc, r.run_uuid",
                limit=f"limit {int(max_results) + 1} offset {offset}",
            )
        token = str(offset + max_results) if len(found) > max_results else None
        return Page(found[:max_results], token)

    def run_ids_with_prefix(self, experiment_id: str, prefix: str, limit: int) -> list[str]:
        """Ids of the experiment's active runs that start with `prefix`: a range scan of the
        runs table's primary key, as fast at 100,000 runs as at ten."""
        with self._read() as con:
            rows = con.execute(
                "select run_uuid from runs where run_uuid >= ? and run_uuid < ? and "
                "experiment_id = ? and lifecycle_stage = 'active' order by run_uuid limit ?",
                (prefix, prefix + "\U0010ffff", int(experiment_id), limit),
            ).fetchall()
        return [r[0] for r in rows]

    def _runs(
        self,
        con: sqlite3.Connection,
        where: str,
        args: tuple[Any, ...],
        order: str = "",
        limit: str = "",
    ) -> list[Run]:
        rows = con.execute(
            "select r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, r.end_time, "  # noqa: S608
            "r.lifecycle_stage, r.artifact_uri, r.user_id from runs r "
            f"where {where} {order} {limit}",
            args,
        ).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        metrics = _by_run(
            con, "select run_uuid, key, value, is_nan from latest_metrics", ids, _metric
        )
        params = _by_run(con, "select run_uuid, key, value from params", ids, _pair)
        tags = _by_run(con, "select run_uuid, key, value from tags", ids, _pair)
        inputs = _inputs(con, ids)
        out = []
        for r in rows:
            run_tags = tags.get(r[0], {})
            info = RunInfo(
                r[0],
                r[1] or run_tags.get("mlflow.runName", ""),
                str(r[2]),
                r[3] or "",
                int(r[4] or 0),
                r[5],
                r[6] or "",
                r[7] or "",
                r[8] or "",
            )
            data = RunData(metrics.get(r[0], {}), params.get(r[0], {}), run_tags)
            out.append(Run(info, data, RunInputs(inputs.get(r[0], []))))
        return out

    # -- artifacts (the embedded store keeps them on this disk) ------------------------------
    def _artifact_dir(self, run_id: str) -> Path | None:
        with self._read() as con:
            row = con.execute("select artifact_uri from runs where run_uuid = ?", (run_id,))
            found = row.fetchone()
        if found is None:
            raise NotFound(f"Run with id={run_id} not found")
        parsed = urlparse(found[0] or "")
        if parsed.scheme != "file" or parsed.netloc:
            return None
        return Path(unquote(parsed.path))

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """A run's artifact file copied into `dst_path` (as MLflow's local repository does)."""
        root = self._artifact_dir(run_id)
        if root is None or dst_path is None or not _is_relative(path):
            return str(self.mlflow.download_artifacts(run_id, path, dst_path))
        src = root / path
        if not src.is_file():
            if src.is_dir():
                return str(self.mlflow.download_artifacts(run_id, path, dst_path))
            raise NotFound(
                f"Failed to download artifacts from path {path!r}, please ensure that the "
                "path is correct."
            )
        dst = Path(dst_path) / src.name  # where MLflow's local repository puts a file
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return str(dst)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        root = self._artifact_dir(run_id)
        if root is None or (path is not None and not _is_relative(path)):
            return cast("list[FileInfo]", self.mlflow.list_artifacts(run_id, path))
        folder = root / path if path else root
        if not folder.is_dir():
            return []
        found = []
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            rel = f"{path}/{item.name}" if path else item.name
            size = None if item.is_dir() else item.stat().st_size
            found.append(FileInfo(rel, item.is_dir(), size))
        return found


class _LazyModel:
    """A registered model found by a search: its name now, its tags and aliases on demand."""

    def __init__(self, client: EmbeddedClient, name: str) -> None:
        self.name = name
        self._client = client
        self._full: RegisteredModel | None = None

    def _model(self) -> RegisteredModel:
        if self._full is None:
            self._full = self._client.get_registered_model(self.name)
        return self._full

    @property
    def tags(self) -> dict[str, str]:
        return self._model().tags

    @property
    def aliases(self) -> dict[str, int]:
        return self._model().aliases

    @property
    def creation_timestamp(self) -> int:
        return self._model().creation_timestamp


def _like_suffix(filter_string: str | None) -> str | None:
    """The suffix of `name LIKE '%suffix'` (no other wildcard), '' for no filter; else None."""
    text = (filter_string or "").strip()
    if not text:
        return ""
    prefix = "name LIKE '%"
    if text.startswith(prefix) and text.endswith("'"):
        suffix = text[len(prefix) : -1]
        if not any(c in suffix for c in "%_'\\"):
            return suffix
    return None


def _name_equals(filter_string: str | None) -> str | None:
    """The name of `name = '...'` (or `name = "..."`); None for any other filter."""
    text = (filter_string or "").strip()
    if not text.startswith("name = ") or len(text) < 9:
        return None
    literal = text[len("name = ") :]
    quote_char = literal[0]
    if quote_char not in "'\"" or literal[-1] != quote_char or quote_char in literal[1:-1]:
        return None
    return literal[1:-1]


def _by_run(
    con: sqlite3.Connection,
    select: str,
    ids: list[str],
    pick: Callable[[tuple[Any, ...]], tuple[str, Any]],
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):  # SQLite binds at most 999 parameters
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in con.execute(f"{select} where run_uuid in ({marks})", chunk):
            key, value = pick(row[1:])
            out.setdefault(row[0], {})[key] = value
    return out


def _metric(row: tuple[Any, ...]) -> tuple[str, float]:
    key, value, is_nan = row
    return key, math.nan if is_nan else float(value)


def _pair(row: tuple[Any, ...]) -> tuple[str, Any]:
    return row[0], row[1]


def _inputs(con: sqlite3.Connection, ids: list[str]) -> dict[str, list[DatasetInput]]:
    """The dataset inputs of each run, with their tags."""
    found: dict[str, dict[str, tuple[Dataset, list[RunTag]]]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = con.execute(
            "select i.destination_id, d.dataset_uuid, d.name, d.digest, "  # noqa: S608
            "d.dataset_source_type, d.dataset_source, t.name, t.value from inputs i "
            "join datasets d on i.source_id = d.dataset_uuid "
            "left join input_tags t on t.input_uuid = i.input_uuid "
            f"where i.destination_type = 'RUN' and i.destination_id in ({marks})",
            chunk,
        )
        for run, uuid, name, digest, kind, source, tag, value in rows:
            entry = found.setdefault(run, {}).setdefault(
                uuid, (Dataset(name, digest, kind, source), [])
            )
            if tag is not None:
                entry[1].append(RunTag(tag, value))
    return {
        run: [DatasetInput(d, tags) for d, tags in datasets.values()]
        for run, datasets in found.items()
    }


def _is_relative(path: str) -> bool:
    parts = Path(path).parts
    return bool(parts) and not Path(path).is_absolute() and ".." not in parts
