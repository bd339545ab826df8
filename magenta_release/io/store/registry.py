"""The model registry for one registered model: its versions, their tags and descriptions,
and the aliases that point at them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magenta_release.core.errors import BadInput
from magenta_release.io.store.errors import EXISTS, _done, or_none, translate
from magenta_release.io.store.records import STATUS_TAG, VersionInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient


def filter_literal(value: str) -> str:
    """`value` as a string literal of an MLflow search filter. MLflow's filter grammar has no
    escape inside a literal, so a value holding both quote characters cannot be searched for;
    the policy refuses such model names, and this refuses them again rather than build a
    filter that means something else."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise BadInput(f"name {value!r} holds both quote characters; rename it")


VERSION_PAGE = 10_000  # versions per search page
MODEL_PAGE = 1_000  # registered models per search page (MLflow's most)


def all_versions(client: MlflowClient, filter_string: str | None) -> list[Any]:
    """Every model version matching `filter_string`, page by page: no cap."""
    out: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(
            filter_string, max_results=VERSION_PAGE, page_token=token
        )
        out += list(page)
        token = page.token
        if not token:
            return out


def all_registered_models(client: MlflowClient, filter_string: str | None = None) -> list[Any]:
    """Every registered model matching `filter_string`, page by page: no cap. From the
    embedded store the entries carry their names and read their tags only when asked."""
    out: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_registered_models(
            filter_string=filter_string, max_results=MODEL_PAGE, page_token=token
        )
        out += list(page)
        token = page.token
        if not token:
            return out


def ensure_registered_model(client: MlflowClient, name: str, description: str = "") -> None:
    """Create the registered model `name` unless it exists."""
    with translate(f"creating registered model {name!r}"):
        _done(
            lambda: client.create_registered_model(name, description=description or None),
            EXISTS,
        )


class Registry:
    """The versions and aliases of one registered model."""

    def __init__(self, client: MlflowClient, name: str, tracking_uri: str) -> None:
        self.client = client
        self.name = name
        self.tracking_uri = tracking_uri

    def versions(self) -> list[VersionInfo]:
        """Every version of the registered model, newest first (empty if none), however many
        there are (page by page)."""
        with translate(f"listing versions of {self.name!r}"):
            found = or_none(
                lambda: all_versions(self.client, f"name = {filter_literal(self.name)}")
            )
            if found is None:
                return []
            aliases = self._aliases()
        out = [_version_info(v, aliases) for v in found]
        return sorted(out, key=lambda v: -v.version)

    def registered_runs(self) -> set[str]:
        """The runs behind any version of any registered model in the store (every model's,
        not only this one's: models may share an experiment)."""
        with translate("listing the versions of every model"):
            found = all_versions(self.client, None)
        return {str(v.run_id) for v in found if v.run_id}

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
        ensure_registered_model(self.client, self.name)
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

    def description(self, version: int) -> str:
        with translate(f"reading version {version}"):
            return str(self.client.get_model_version(self.name, str(version)).description or "")

    def set_description(self, version: int, text: str) -> None:
        """The release report as the version's description (rendered by the MLflow UI)."""
        with translate(f"describing version {version}"):
            self.client.update_model_version(self.name, str(version), description=text[:5000])


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
