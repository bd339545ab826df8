"""The embedded store: a SQLite MLflow database under `MAGENTA_RELEASE_HOME`, created by
copying a migrated template when its schema is the installed MLflow's."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from magenta_release.core.errors import BadInput
from magenta_release.core.settings import Settings

# Package data: what `init` copies ships inside the package, so a wheel install has it too.
TEMPLATE_DIR = Path(str(resources.files("magenta_release") / "template"))
POLICY_FILE = "release-policy.toml"


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
