"""Settings: one frozen object read from `MAGENTA_RELEASE_*` variables; CLI flags override it."""

from __future__ import annotations

import getpass
import os
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from magenta_release.core.telemetry import QUIET, TELEMETRY_OFF, disable_telemetry

__all__ = ["QUIET", "TELEMETRY_OFF", "Settings", "disable_telemetry"]


class Settings(BaseSettings):
    """Where the store is, which policy applies and who is acting."""

    model_config = SettingsConfigDict(env_prefix="MAGENTA_RELEASE_", frozen=True, extra="ignore")

    home: Path = Field(default=Path("mlruns"), description="Embedded store folder.")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; else MLFLOW_TRACKING_URI; else `home`."
    )
    policy: Path | None = Field(
        default=None, description="Policy TOML that `init` stores (default: the template)."
    )
    model: str | None = Field(
        default=None, description="Registered model to act on (--model overrides)."
    )
    user: str | None = Field(default=None, description="Who is acting (--by overrides).")

    def resolved_tracking_uri(self) -> str:
        """The tracking URI in force: explicit, else MLFLOW_TRACKING_URI, else the local store."""
        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri:
            return uri
        # quoted: a folder named with %, # or ? must not turn into a query or fragment
        return f"sqlite:///{quote(str(self.db_path))}"

    @property
    def is_local(self) -> bool:
        """True when the store is the embedded SQLite store under `home`."""
        return not (self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_path(self) -> Path:
        return self.home_dir / "mlflow.db"

    @property
    def artifact_root(self) -> Path:
        return self.home_dir / "artifacts"

    def init_policy_path(self) -> Path:
        """The file `init` stores as the first policy: MAGENTA_RELEASE_POLICY, else the
        template. Every other command reads the policy stored in the MLflow store."""
        if self.policy is not None:
            return self.policy.expanduser()
        return Path(str(resources.files("magenta_release") / "template" / "release-policy.toml"))

    def actor(self, by: str | None = None) -> str:
        """Identity: --by, else MAGENTA_RELEASE_USER, else the OS login."""
        return by or self.user or getpass.getuser()

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the non-None values in `changes` applied (CLI flags)."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return Settings(**data)
