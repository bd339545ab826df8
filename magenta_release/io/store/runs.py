"""Experiments, runs and their artifacts: the tracking half of MLflow, for one experiment
(the governed model's), plus the documents other experiments hold (`record_document`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magenta_release.core import keys
from magenta_release.core.errors import BadInput, StoreUnreachable
from magenta_release.core.settings import Settings
from magenta_release.io.store.embedded import EmbeddedClient
from magenta_release.io.store.errors import EXISTS, _done, translate
from magenta_release.io.store.records import DatasetInput, LoggedModelInfo, RunInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient

RUN_PAGE = 10_000  # runs per search page (MLflow allows up to 50,000)


class Runs:
    """The runs of one experiment, and their artifacts and logged models."""

    def __init__(
        self, client: MlflowClient, settings: Settings, experiment: str, tracking_uri: str
    ) -> None:
        self.client = client
        self.settings = settings
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self._experiment_id: str | None = None

    def artifact_location(self) -> str:
        with translate("reading the experiment"):
            exp = self.client.get_experiment_by_name(self.experiment)
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
        wanted = name or self.experiment
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
        try:
            with translate(f"reading run {run_id}"):
                run = self.client.get_run(run_id)
        except BadInput:
            raise BadInput(
                f"run {run_id} does not exist; list runs with `magenta-release runs`"
            ) from None
        if run.info.experiment_id != self.experiment_id():
            raise BadInput(f"run {run_id} is not in experiment {self.experiment!r}")
        return _run_info(run)

    def _expand_prefix(self, prefix: str) -> str:
        """The one run of the experiment whose id starts with `prefix`, at any number of runs:
        an indexed range query on the embedded store, every page of runs on a server (MLflow's
        search filters cannot match a prefix of the id)."""
        if len(prefix) < 8:
            raise BadInput(
                f"run id {prefix!r} is too short; give at least 8 characters of it "
                "(see: magenta-release runs)"
            )
        prefix = prefix.lower()
        try:
            exp_id = self.experiment_id()
        except BadInput:
            exp_id = None
        if exp_id is None:
            matches: list[str] = []
        elif isinstance(self.client, EmbeddedClient):
            matches = self.client.run_ids_with_prefix(exp_id, prefix, limit=6)
        else:
            matches = [r.run_id for r in self.all_runs() if r.run_id.startswith(prefix)]
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

    def all_runs(self, filter_string: str = "") -> list[RunInfo]:
        """Every run of the experiment matching `filter_string`, newest first, page by page
        (no cap: a store with 100,000 runs lists 100,000)."""
        try:
            exp_id = self.experiment_id()
        except BadInput:
            return []
        with translate("searching runs"):
            return [_run_info(r) for r in search_all_runs(self.client, [exp_id], filter_string)]

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
            return best(self.all_runs(f"{base} and metrics.`{metric}` {op} {anything}"))
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
            self.all_runs(f"{base} and metrics.`{metric}` {op} {candidates[-1].metrics[metric]!r}")
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
            self.client.set_tag(run.run_id, keys.RUN_ARTIFACTS_DELETED, "true")


def search_all_runs(
    client: MlflowClient, experiment_ids: list[str], filter_string: str = ""
) -> list[Any]:
    """Every run of the experiments matching `filter_string`, newest first, page by page."""
    out: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=RUN_PAGE,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        out += list(page)
        token = page.token
        if not token:
            return out


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
    # MLflow lists a run's inputs in no defined order: one order, whoever answers
    return tuple(sorted(found, key=lambda d: (d.context, d.name, d.digest, d.source_type)))


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
