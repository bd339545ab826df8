"""The one module that talks to MLflow. It builds an explicit `MlflowClient` from settings (no
global tracking URI), translates MLflow errors into `ReleaseError`s and returns the project's own
frozen dataclasses instead of MLflow entities."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlparse

from magenta_release.errors import (
    BadInput,
    IntegrityViolation,
    PolicyRefused,
    ReleaseError,
    StoreUnreachable,
)
from magenta_release.policy import Policy
from magenta_release.settings import Settings, disable_telemetry

if TYPE_CHECKING:
    from mlflow import MlflowClient

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "mlruns_template"
POLICY_FILE = "release-policy.toml"
STATUS_TAG = "release.status"


@dataclass(frozen=True)
class DatasetInput:
    """A dataset a run logged as an input (`mlflow.log_input`): where and what, never rows."""

    context: str
    name: str
    digest: str
    source_type: str
    source: dict[str, Any]

    @property
    def uri(self) -> str:
        return str(
            self.source.get("uri") or self.source.get("url") or self.source.get("path") or ""
        )


@dataclass(frozen=True)
class LoggedModelInfo:
    """An MLflow 3 LoggedModel of a run."""

    model_id: str
    name: str
    artifact_location: str


@dataclass(frozen=True)
class RunInfo:
    """A tracked training run, as the commands need it."""

    run_id: str
    name: str
    status: str
    start_time: int
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    artifact_uri: str = ""
    inputs: tuple[DatasetInput, ...] = ()

    @property
    def dataset_sha256(self) -> str:
        return self.tags.get("magenta.dataset_sha256", "")


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version with its release tags and aliases."""

    version: int
    run_id: str
    source: str
    status: str
    aliases: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)
    created: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "status": self.status,
            "aliases": list(self.aliases),
            "proposed_by": self.tags.get("release.proposed_by"),
            "approved_by": self.tags.get("release.approved_by"),
            "approved_at": self.tags.get("release.approved_at"),
        }


MISSING, EXISTS = "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"
T = TypeVar("T")


def or_none(call: Callable[[], T]) -> T | None:
    """`call()`, or None when MLflow answers that the resource does not exist (the one
    answer that is not an error here; `translate` turns every other one)."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if exc.error_code == MISSING:
            return None
        raise


def _done(call: Callable[[], object], *refusals: str) -> bool:
    """True if `call()` succeeded; False when MLflow refused it with one of `refusals`."""
    from mlflow.exceptions import MlflowException

    try:
        call()
    except MlflowException as exc:
        if exc.error_code in refusals:
            return False
        raise
    return True


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn MLflow and connection errors into ReleaseErrors that say what failed."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except ReleaseError:
        raise
    except MlflowException as exc:
        code = str(exc.error_code)
        text = str(exc.message).splitlines()[0][:300] if exc.message else code
        if code == MISSING:
            raise BadInput(f"{what}: not found ({text})") from exc
        raise _translate_code(what, code, text) from exc
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnreachable(f"{what}: the store cannot be used ({exc})") from exc
    except Exception as exc:
        # SQLAlchemy and requests errors surface here; they mean the store is not usable.
        if type(exc).__module__.split(".")[0] in {"sqlalchemy", "requests", "urllib3"}:
            raise StoreUnreachable(
                f"{what}: the store cannot be reached ({type(exc).__name__}); check "
                "--tracking-uri / MLFLOW_TRACKING_URI"
            ) from exc
        raise


def _translate_code(what: str, code: str, text: str) -> ReleaseError:
    """The ReleaseError for an MLflow error code (the caller chains the original)."""
    if code == "UNAUTHENTICATED":
        return StoreUnreachable(
            f"{what}: the MLflow server refused the credentials; set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if code == "PERMISSION_DENIED":
        return PolicyRefused(
            f"{what}: the MLflow server refused it ({text}); if this is a permission, ask an "
            "admin to grant it on the registered model"
        )
    if code in {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS"}:
        return BadInput(f"{what}: {text}")
    if "API request to" in text and ("Connection" in text or "Max retries" in text):
        return StoreUnreachable(
            f"{what}: the MLflow server cannot be reached; check that it runs and that "
            "MLFLOW_TRACKING_URI / --tracking-uri point at it"
        )
    return StoreUnreachable(f"{what}: the MLflow store failed ({text})")


def template_db() -> Path:
    return TEMPLATE_DIR / "mlflow.db"


def schema_head() -> str:
    """The alembic head revision of the installed MLflow's tracking schema."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    config = _get_alembic_config("sqlite://")  # type: ignore[no-untyped-call]
    return str(ScriptDirectory.from_config(config).get_current_head())


def db_revision(path: Path) -> str | None:
    """The alembic revision recorded in a SQLite MLflow database, None if it has none."""
    try:
        con = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            row = con.execute("select version_num from alembic_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def build_template_db(path: Path) -> None:
    """Create an empty, fully migrated MLflow SQLite database at `path` (what `make template`
    runs after an MLflow upgrade)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.unlink(missing_ok=True)
    store = SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "artifacts"))  # type: ignore[no-untyped-call]
    store.engine.dispose()


def init_local_store(settings: Settings) -> tuple[Path, bool]:
    """Create the embedded store under `settings.home` if missing. Returns (home, created)."""
    home = settings.home_dir
    if home.exists() and not home.is_dir():
        raise BadInput(
            f"store path {home} is a file, not a folder; set MAGENTA_RELEASE_HOME to a folder"
        )
    created = False
    try:
        home.mkdir(parents=True, exist_ok=True)
        settings.artifact_root.mkdir(exist_ok=True)
        if not settings.db_path.exists():
            template = template_db()
            # A migrated template saves ~1 s of migrations; an outdated one would be migrated
            # on first use anyway, so only copy it when its revision is the installed head.
            if template.exists() and db_revision(template) == schema_head():
                tmp = settings.db_path.with_suffix(f".{uuid.uuid4().hex}.tmp")
                shutil.copyfile(template, tmp)
                tmp.replace(settings.db_path)
            else:
                build_template_db(settings.db_path)
            created = True
    except PermissionError as exc:
        raise BadInput(
            f"store folder {home} is not writable ({exc.strerror}); "
            "choose another MAGENTA_RELEASE_HOME"
        ) from exc
    return home, created


class Store:
    """An MLflow tracking + registry store, bound to one registered model and the release
    policy stored for it (`policy_store`)."""

    def __init__(self, settings: Settings, policy: Policy, client: Any = None) -> None:
        self.settings = settings
        self.policy = policy
        self.tracking_uri = settings.resolved_tracking_uri()
        self.client: MlflowClient = client if client is not None else _client(self.tracking_uri)
        self.name = policy.registered_name
        self._experiment_id: str | None = None

    def governed_by(self, policy: Policy) -> Store:
        """The same store bound to `policy` (and the model it names); shares the client."""
        return Store(self.settings, policy, self.client)

    # ---- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, model: str | None = None) -> Store:
        """Open the store named by settings, bound to `model` (else MAGENTA_RELEASE_MODEL,
        else the only model governed in it) under the policy stored for that model."""
        from magenta_release import policy_store

        client = cls.connect(settings)
        name = policy_store.default_model(client, model or settings.model)
        policy = policy_store.current(client, settings, name)
        return cls(settings, policy, client)

    @staticmethod
    def connect(settings: Settings) -> MlflowClient:
        """A client for the store named by settings; the local store must exist (`init`)."""
        if settings.is_local and settings.home_dir.exists() and not settings.home_dir.is_dir():
            raise BadInput(
                f"store path {settings.home_dir} is a file, not a folder; "
                "set MAGENTA_RELEASE_HOME to a store folder"
            )
        if settings.is_local and not settings.db_path.exists():
            raise BadInput(
                f"no store at {settings.home_dir}; run `magenta-release init` first "
                "(or set MAGENTA_RELEASE_HOME / MLFLOW_TRACKING_URI)"
            )
        if settings.is_local and db_revision(settings.db_path) is None:
            raise StoreUnreachable(
                f"{settings.db_path} is not a readable MLflow database; "
                "restore it from a backup or move it away and run init"
            )
        return _client(settings.resolved_tracking_uri())

    def check_residency(self) -> None:
        """Refuse (exit 3) before any write if the tracking host or the experiment's artifact
        location is outside the policy's allow-lists."""
        res = self.policy.residency
        parsed = urlparse(self.tracking_uri)
        if (
            parsed.scheme not in {"sqlite", ""}
            and parsed.hostname not in res.allowed_tracking_hosts
        ):
            raise IntegrityViolation(
                f"tracking host {parsed.hostname!r} is not in the policy's "
                f"allowed_tracking_hosts {list(res.allowed_tracking_hosts)}; add it to "
                "[residency] only if it is in an allowed region"
            )
        location = self.artifact_location()
        if not _location_allowed(location, res.allowed_artifact_locations):
            raise IntegrityViolation(
                f"artifact location {location!r} is not in the policy's "
                f"allowed_artifact_locations {list(res.allowed_artifact_locations)}; "
                "store artifacts in an allowed location"
            )

    # ---- experiment and runs ---------------------------------------------------------------
    def artifact_location(self) -> str:
        with translate("reading the experiment"):
            exp = self.client.get_experiment_by_name(self.policy.model.experiment)
        if exp is not None:
            return str(exp.artifact_location)
        return self._default_artifact_location()

    def _default_artifact_location(self) -> str:
        if self.settings.is_local:
            return self.settings.artifact_root.as_uri()
        return "mlflow-artifacts:/"  # a server proxies artifacts to its own destination

    def experiment_id(self, create: bool = False, name: str | None = None) -> str:
        """The model's experiment id (or experiment `name`'s); created, with an explicit
        artifact location, when asked."""
        if name is None and self._experiment_id is not None:
            return self._experiment_id
        wanted = name or self.policy.model.experiment
        with translate(f"reading experiment {wanted!r}"):
            exp = self.client.get_experiment_by_name(wanted)
            if exp is None:
                if not create:
                    raise BadInput(
                        f"experiment {wanted!r} does not exist yet; run `magenta-release train` "
                        "first"
                    )
                location = self._default_artifact_location()
                if not self.settings.is_local:
                    location = ""  # let the server choose its proxied destination
                created: list[str] = []
                if _done(
                    lambda: created.append(
                        self.client.create_experiment(wanted, artifact_location=location or None)
                    ),
                    EXISTS,
                ):
                    exp_id = created[0]
                else:  # created concurrently by another process
                    raced = self.client.get_experiment_by_name(wanted)
                    if raced is None:
                        raise StoreUnreachable(f"experiment {wanted!r} vanished while created")
                    exp_id = raced.experiment_id
            else:
                exp_id = exp.experiment_id
        if name is None:
            self._experiment_id = str(exp_id)
        return str(exp_id)

    def record_document(
        self, experiment: str, run_name: str, tags: dict[str, str], filename: str, text: str
    ) -> str:
        """One finished run in `experiment` holding `text` as the artifact `filename`."""
        with translate(f"recording {filename} in experiment {experiment!r}"):
            run = self.client.create_run(
                self.experiment_id(create=True, name=experiment), run_name=run_name, tags=tags
            )
            run_id = str(run.info.run_id)
            self.client.log_text(run_id, text, filename)
            self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def create_run(self, run_name: str, tags: dict[str, str]) -> str:
        with translate("creating a run"):
            run = self.client.create_run(
                self.experiment_id(create=True), run_name=run_name, tags=tags
            )
        return str(run.info.run_id)

    def log_run_data(
        self, run_id: str, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str]
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        with translate(f"logging to run {run_id}"):
            self.client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                params=[Param(k, str(v)) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )

    def log_model_metrics(
        self,
        run_id: str,
        metrics: dict[str, float],
        model_id: str | None,
        dataset: DatasetInput | None,
    ) -> None:
        """Metrics about a model on a dataset (MLflow 3 model metrics): the UI shows them on
        the logged model and against the evaluation dataset."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with translate(f"logging model metrics to run {run_id}"):
            self.client.log_batch(
                run_id,
                metrics=[
                    Metric(
                        k,
                        float(v),
                        now,
                        0,
                        model_id=model_id,
                        dataset_name=dataset.name if dataset else None,
                        dataset_digest=dataset.digest if dataset else None,
                    )
                    for k, v in metrics.items()
                ],
            )

    def log_artifacts(self, run_id: str, folder: Path, path: str | None = None) -> None:
        with translate(f"uploading artifacts of run {run_id}"):
            self.client.log_artifacts(run_id, str(folder), path)

    def log_dataset(self, run_id: str, dataset: Any, context: str) -> None:
        from mlflow.entities import DatasetInput, InputTag

        with translate(f"logging the dataset of run {run_id}"):
            self.client.log_inputs(
                run_id,
                [
                    DatasetInput(
                        dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)]
                    )
                ],
            )

    def end_run(self, run_id: str, status: str) -> None:
        with translate(f"ending run {run_id}"):
            self.client.set_terminated(run_id, status)

    def get_run(self, run_id: str) -> RunInfo:
        """A run by its id or by a unique prefix of at least 8 characters (the tables print
        12); an ambiguous prefix is BadInput listing the matches."""
        if not run_id or len(run_id) > 64 or not run_id.replace("-", "").isalnum():
            raise BadInput(f"run id {run_id!r} is malformed; list runs with `magenta-release runs`")
        if len(run_id) < 32:
            run_id = self._expand_prefix(run_id)
        from mlflow.exceptions import MlflowException

        try:
            with translate(f"reading run {run_id}"):
                run = self.client.get_run(run_id)
        except BadInput:
            raise BadInput(
                f"run {run_id} does not exist; list runs with `magenta-release runs`"
            ) from None
        except MlflowException as exc:  # pragma: no cover - translate handles all codes
            raise StoreUnreachable(str(exc)) from exc
        if run.info.experiment_id != self.experiment_id():
            raise BadInput(f"run {run_id} is not in experiment {self.policy.model.experiment!r}")
        return _run_info(run)

    def _expand_prefix(self, prefix: str) -> str:
        if len(prefix) < 8:
            raise BadInput(
                f"run id {prefix!r} is too short; give at least 8 characters of it "
                "(see: magenta-release runs)"
            )
        matches = [
            r.run_id
            for r in self.search_runs(max_results=50_000)
            if r.run_id.startswith(prefix.lower())
        ]
        if len(matches) > 1:
            raise BadInput(
                f"run id prefix {prefix!r} is ambiguous: {', '.join(m[:16] for m in matches[:5])}"
                f"{' ...' if len(matches) > 5 else ''}; give more characters"
            )
        if not matches:
            raise BadInput(f"run {prefix} does not exist; list runs with `magenta-release runs`")
        return matches[0]

    def logged_models(self, run: RunInfo) -> list[LoggedModelInfo]:
        """The MLflow 3 LoggedModels a run produced (`mlflow.sklearn.log_model(..., name=...)`)."""
        with translate(f"listing the models of run {run.run_id}"):
            found = self.client.search_logged_models(
                experiment_ids=[self.experiment_id()],
                filter_string=f"source_run_id = '{run.run_id}'",
                max_results=50,
            )
        return [
            LoggedModelInfo(str(m.model_id), str(m.name or ""), str(m.artifact_location or ""))
            for m in found
        ]

    def artifact_paths(self, run_id: str, path: str | None = None, depth: int = 3) -> list[str]:
        """Every artifact path of a run (files and folders), `depth` levels deep."""
        with translate(f"listing artifacts of run {run_id}"):
            out: list[str] = []
            for item in self.client.list_artifacts(run_id, path):
                out.append(item.path)
                if item.is_dir and depth > 1:
                    out += self.artifact_paths(run_id, item.path, depth - 1)
            return out

    def download_uri(self, uri: str, dst: Path) -> Path:
        """Download any artifact URI (`runs:/...`, `models:/m-...`) into a local folder."""
        import mlflow.artifacts

        with translate(f"downloading {uri}"):
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=str(dst), tracking_uri=self.tracking_uri
                )
            )

    def search_runs(
        self, filter_string: str = "", max_results: int = 100, order_by: list[str] | None = None
    ) -> list[RunInfo]:
        try:
            exp_id = self.experiment_id()
        except BadInput:
            return []
        with translate("searching runs"):
            runs = self.client.search_runs(
                [exp_id],
                filter_string=filter_string,
                max_results=max_results,
                order_by=order_by or ["attributes.start_time DESC"],
            )
        return [_run_info(r) for r in runs]

    def top_runs(self, metric: str, k: int, lower_is_better: bool) -> list[RunInfo]:
        """The k best finished runs by `metric` without ordering by a metric in SQL (a full
        join without an index: 2.2 s at 10k runs). Start from the newest runs' k-th best value
        as a bar, fetch only runs at or past it, raise the bar, repeat; sort in memory."""
        page = 500
        op = "<=" if lower_is_better else ">="

        def best(runs: list[RunInfo]) -> list[RunInfo]:
            scored = [r for r in runs if metric in r.metrics]
            return sorted(
                scored,
                key=lambda r: (
                    r.metrics[metric] if lower_is_better else -r.metrics[metric],
                    -r.start_time,
                ),
            )[:k]

        base = "attributes.status = 'FINISHED'"
        candidates = best(self.search_runs(base, max_results=max(k, 50)))
        if len(candidates) < k:  # fewer than k recent runs with the metric: look at all
            anything = "1e308" if lower_is_better else "-1e308"  # every run with the metric
            return best(
                self.search_runs(
                    f"{base} and metrics.`{metric}` {op} {anything}", max_results=50_000
                )
            )
        for _ in range(20):
            bar = candidates[-1].metrics[metric]
            found = self.search_runs(
                f"{base} and metrics.`{metric}` {op} {bar!r}", max_results=page
            )
            candidates = best(found)
            if len(found) < page:
                return candidates
            if candidates[-1].metrics[metric] == bar:  # ties fill the page; cannot raise it
                break
        return best(
            self.search_runs(
                f"{base} and metrics.`{metric}` {op} {candidates[-1].metrics[metric]!r}",
                max_results=50_000,
            )
        )

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        with translate(f"downloading {path} of run {run_id}"):
            return Path(self.client.download_artifacts(run_id, path, str(dst)))

    def artifact_bytes(self, run_id: str, path: str | None = None) -> int:
        """Total size of a run's artifacts (recursive)."""
        with translate(f"listing artifacts of run {run_id}"):
            total = 0
            for item in self.client.list_artifacts(run_id, path):
                total += (
                    self.artifact_bytes(run_id, item.path)
                    if item.is_dir
                    else int(item.file_size or 0)
                )
            return total

    def delete_run_artifacts(self, run: RunInfo) -> None:
        """Delete a run's artifacts where they are stored and mark the run."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with translate(f"deleting artifacts of run {run.run_id}"):
            get_artifact_repository(run.artifact_uri).delete_artifacts()  # type: ignore[no-untyped-call]
            self.client.set_tag(run.run_id, "magenta.artifacts_deleted", "true")

    def ensure_registered_model(self, name: str | None = None, description: str = "") -> None:
        name = name or self.name
        with translate(f"creating registered model {name!r}"):
            _done(
                lambda: self.client.create_registered_model(name, description=description or None),
                EXISTS,
            )

    def versions(self) -> list[VersionInfo]:
        """Every version of the registered model, newest first (empty if none)."""
        with translate(f"listing versions of {self.name!r}"):
            found = or_none(
                lambda: self.client.search_model_versions(
                    f"name = '{self.name}'", max_results=10_000
                )
            )
            if found is None:
                return []
            aliases = self._aliases()
        out = [_version_info(v, aliases) for v in found]
        return sorted(out, key=lambda v: -v.version)

    def _alias_map(self) -> dict[str, int]:
        """{alias: version}; empty if the registered model does not exist yet."""
        model = or_none(lambda: self.client.get_registered_model(self.name))
        if model is None:
            return {}
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    def _aliases(self) -> dict[int, tuple[str, ...]]:
        by_version: dict[int, list[str]] = {}
        for alias, version in self._alias_map().items():
            by_version.setdefault(version, []).append(alias)
        return {v: tuple(sorted(a)) for v, a in by_version.items()}

    def version(self, version: int | str) -> VersionInfo:
        text = str(version)
        if not text.isdigit() or int(text) < 1:
            raise BadInput(
                f"version {text!r} is not a version number; list versions with "
                "`magenta-release status`"
            )
        try:
            with translate(f"reading version {text}"):
                v = self.client.get_model_version(self.name, text)
                aliases = self._aliases()
        except BadInput:
            raise BadInput(
                f"version {text} of {self.name!r} does not exist; list versions "
                "with `magenta-release status`"
            ) from None
        return _version_info(v, aliases)

    def alias(self, alias: str) -> VersionInfo | None:
        """The version an alias points at, None if unset. (Asking a server for an alias of a
        model that does not exist yet answers 403, so look at the model's aliases first.)"""
        with translate(f"reading @{alias}"):
            aliases = self._alias_map()
            if alias not in aliases:
                return None
            v = self.client.get_model_version(self.name, str(aliases[alias]))
            by_version: dict[int, list[str]] = {}
            for a, number in aliases.items():
                by_version.setdefault(number, []).append(a)
            return _version_info(v, {k: tuple(sorted(x)) for k, x in by_version.items()})

    def version_for_run(self, run_id: str) -> VersionInfo | None:
        for v in self.versions():
            if v.run_id == run_id:
                return v
        return None

    def create_version(
        self, run_id: str, source: str, tags: dict[str, str], model_id: str | None = None
    ) -> int:
        self.ensure_registered_model()
        with translate(f"registering the model of run {run_id}"):
            mv = self.client.create_model_version(
                self.name, source, run_id=run_id, tags=tags, model_id=model_id
            )
        return int(mv.version)

    def set_version_tags(self, version: int, tags: dict[str, str]) -> None:
        with translate(f"tagging version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(self.name, str(version), key, value)

    def delete_version_tag(self, version: int, key: str) -> None:
        with translate(f"writing version {version}"):
            self.client.delete_model_version_tag(self.name, str(version), key)

    def set_alias(self, alias: str, version: int | None) -> None:
        with translate(f"moving @{alias}"):
            if version is None:
                if alias in self._alias_map():
                    self.client.delete_registered_model_alias(self.name, alias)
            else:
                self.client.set_registered_model_alias(self.name, alias, str(version))

    def download_version(self, version: VersionInfo, dst: Path) -> Path:
        """Download a version's model files into `dst` (a fresh local folder)."""
        import mlflow.artifacts

        with translate(f"downloading version {version.version}"):
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=version.source, dst_path=str(dst), tracking_uri=self.tracking_uri
                )
            )

    # ---- registered-model tags (audit log, locks) -------------------------------------------
    def model_tags(self, name: str) -> dict[str, str]:
        with translate(f"reading {name!r}"):
            model = or_none(lambda: self.client.get_registered_model(name))
        return {} if model is None else dict(model.tags or {})

    def set_model_tag(
        self, name: str, key: str, value: str, *, create: bool = True, description: str = ""
    ) -> None:
        """Set a tag on a registered model, creating the model first unless the caller knows
        it exists (a create attempt on an existing model is a failed write)."""
        if create:
            self.ensure_registered_model(name, description)
        with translate(f"writing {name!r}"):
            self.client.set_registered_model_tag(name, key, value)

    def try_create_model(self, name: str, tags: dict[str, str]) -> bool:
        """Atomically create a registered model; False if it exists already."""
        with translate(f"creating {name!r}"):
            # On a name clash MLflow reads the existing model to word its error; if that
            # model was deleted in between, the clash surfaces as RESOURCE_DOES_NOT_EXIST.
            # Either way our insert failed.
            return _done(
                lambda: self.client.create_registered_model(name, tags=tags), EXISTS, MISSING
            )

    def model_created(self, name: str) -> tuple[int, dict[str, str]] | None:
        with translate(f"reading {name!r}"):
            m = or_none(lambda: self.client.get_registered_model(name))
        return None if m is None else (int(m.creation_timestamp or 0), dict(m.tags or {}))

    def delete_model(self, name: str) -> bool:
        with translate(f"deleting {name!r}"):
            return _done(lambda: self.client.delete_registered_model(name), MISSING)

    def actor(self, by: str | None = None) -> str:
        """Who is acting, normalised (`identity.normalise`). Where the store authenticates
        (server mode), it is the authenticated user, and `--by` may only name that user; in
        embedded mode it is the typed name (--by, else MAGENTA_RELEASE_USER, else the OS
        login), which nothing verifies."""
        from magenta_release import identity

        typed = self.settings.actor(by)
        authenticated = self.whoami()
        if authenticated:
            if (by or self.settings.user) and not identity.same(typed, authenticated):
                raise PolicyRefused(
                    f"--by {typed} is not the authenticated MLflow user {authenticated}; "
                    "act as yourself (leave --by out) or log in as that person"
                )
            return identity.normalise(authenticated)
        return identity.normalise(typed)

    def model_permission(self) -> str | None:
        """The caller's effective MLflow permission on the registered model (READ, EDIT,
        MANAGE, ...) where the server has permissions; None in embedded mode or against a
        server without authentication. A dry probe: it writes nothing."""
        from mlflow.exceptions import MlflowException
        from mlflow.server import get_app_client

        user = self.whoami()
        if self.settings.is_local or not user:
            return None
        client = get_app_client("basic-auth", tracking_uri=self.tracking_uri)
        with translate(f"reading your permission on {self.name!r}"):
            try:
                found = client.get_user_permission(user, "registered_model", self.name)
            except MlflowException as exc:
                if exc.error_code == "ENDPOINT_NOT_FOUND" or "404" in str(exc.message):
                    return None  # no authentication on this server: nothing to probe
                raise
        return str(found.permission)

    def whoami(self) -> str | None:
        """The identity the server will authenticate: the e-mail in the IAP ID token when the
        tracking server is behind IAP, else the basic-auth user in server mode, else None."""
        import os

        from magenta_release import iap

        if self.settings.is_local:
            return None
        if iap.active():
            try:
                return iap.identity()
            except iap.IapCredentialsError as exc:
                raise StoreUnreachable(f"reaching the MLflow server through IAP: {exc}") from exc
        return os.environ.get("MLFLOW_TRACKING_USERNAME")


def _client(tracking_uri: str) -> MlflowClient:
    disable_telemetry()
    from mlflow import MlflowClient

    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:  # MLflow raises several types for an unknown scheme
        raise BadInput(
            f"tracking URI {tracking_uri!r} is not supported; use an http(s):// MLflow "
            "server, postgresql://... or leave it unset for the local store"
        ) from exc


def _location_allowed(location: str, allowed: tuple[str, ...]) -> bool:
    for prefix in allowed:
        if prefix.startswith("gs://"):
            bucket = prefix.rstrip("/") + "/"
            if location == prefix.rstrip("/") or location.startswith(bucket):
                return True
        elif location.startswith(prefix):
            return True
    return False


def _dataset_inputs(run: Any) -> tuple[DatasetInput, ...]:
    found = []
    for item in getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []:
        tags = {t.key: t.value for t in item.tags or []}
        try:
            source = json.loads(item.dataset.source or "{}")
        except ValueError:
            source = {}
        found.append(
            DatasetInput(
                tags.get("mlflow.data.context", ""),
                str(item.dataset.name or ""),
                str(item.dataset.digest or ""),
                str(item.dataset.source_type or ""),
                source if isinstance(source, dict) else {},
            )
        )
    return tuple(found)


def _run_info(run: Any) -> RunInfo:
    return RunInfo(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        tags={k: v for k, v in run.data.tags.items()},
        artifact_uri=str(run.info.artifact_uri or ""),
        inputs=_dataset_inputs(run),
    )


def _version_info(v: Any, aliases: dict[int, tuple[str, ...]]) -> VersionInfo:
    tags = dict(v.tags or {})
    return VersionInfo(
        version=int(v.version),
        run_id=v.run_id or "",
        source=v.source,
        status=tags.get(STATUS_TAG, ""),
        aliases=aliases.get(int(v.version), ()),
        tags=tags,
        created=int(v.creation_timestamp or 0),
    )


def dumps(data: Any) -> str:
    """Canonical JSON: the form that hashes are taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def version_description(store: Store, version: int) -> str:
    with translate(f"reading version {version}"):
        return str(store.client.get_model_version(store.name, str(version)).description or "")


def set_version_description(store: Store, version: int, text: str) -> None:
    """The release report as the version's description (rendered by the MLflow UI)."""
    with translate(f"describing version {version}"):
        store.client.update_model_version(store.name, str(version), description=text[:5000])
