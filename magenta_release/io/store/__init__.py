"""The only code that talks to MLflow, one module per interface: `runs` (experiments, runs,
artifacts), `registry` (model versions and aliases), `tags` (registered-model tags as
storage), composed by `Store`; `errors` translates MLflow errors, `records` holds the frozen
records returned instead of MLflow entities, `residency` the allow-list check, `local` the
embedded SQLite store."""

from magenta_release.io.store.errors import or_none, translate
from magenta_release.io.store.local import (
    POLICY_FILE,
    TEMPLATE_DIR,
    build_template_db,
    db_revision,
    init_local_store,
    schema_head,
    template_db,
)
from magenta_release.io.store.records import (
    STATUS_TAG,
    DatasetInput,
    LoggedModelInfo,
    RunInfo,
    VersionInfo,
    dumps,
)
from magenta_release.io.store.registry import Registry
from magenta_release.io.store.runs import Runs
from magenta_release.io.store.store import Store
from magenta_release.io.store.tags import TagStorage

__all__ = [
    "POLICY_FILE",
    "STATUS_TAG",
    "TEMPLATE_DIR",
    "DatasetInput",
    "LoggedModelInfo",
    "Registry",
    "RunInfo",
    "Runs",
    "Store",
    "TagStorage",
    "VersionInfo",
    "build_template_db",
    "db_revision",
    "dumps",
    "init_local_store",
    "or_none",
    "schema_head",
    "template_db",
    "translate",
]
