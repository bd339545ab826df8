"""The release policy: a TOML file validated into a frozen model. Its SHA-256 goes into every
audit event, so an approval is tied to the exact rules it was made under."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from magenta_release.contract import DataContract
from magenta_release.errors import BadInput
from magenta_release.evaluate import HEADLINE_METRICS

IDENTIFIER_COLUMNS = ("rating_account_id", "customer_id")


class _Frozen(BaseModel):
    # Unknown keys are refused: a typo such as `min_` must not silently disable a gate.
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSection(_Frozen):
    registered_name: str = "churn-classifier"
    experiment: str = "churn"


class GateSection(_Frozen):
    primary_metric: str = "roc_auc"
    required_metrics: tuple[str, ...] = HEADLINE_METRICS
    min: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.70})
    max: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.005})
    allow_schema_change: bool = False
    bootstrap_rounds: int = Field(default=200, ge=0, le=10_000)
    bootstrap_confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    forbidden_inputs: tuple[str, ...] = IDENTIFIER_COLUMNS
    # Logged metrics may differ from the recomputed ones by this much (float noise, not claims).
    metric_tolerance: float = Field(default=1e-6, ge=0.0, le=0.1)


class ApprovalSection(_Frozen):
    approvers: tuple[str, ...] = ("release-manager",)
    four_eyes: bool = True


class ResidencySection(_Frozen):
    allowed_artifact_locations: tuple[str, ...] = ("file:", "mlflow-artifacts:")
    allowed_tracking_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")


class Policy(_Frozen):
    """What a release must satisfy. Defaults equal `mlruns_template/release-policy.toml`."""

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataContract = Field(default_factory=DataContract)
    gates: GateSection = Field(default_factory=GateSection)
    approval: ApprovalSection = Field(default_factory=ApprovalSection)
    residency: ResidencySection = Field(default_factory=ResidencySection)
    sha256: str = Field(default="", description="SHA-256 of the file it was read from.")

    @property
    def registered_name(self) -> str:
        return self.model.registered_name


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file; BadInput names the file, the problem and the fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"policy file {path} does not exist; run `magenta-release init` "
            "or set MAGENTA_RELEASE_POLICY to a release-policy.toml"
        ) from None
    except OSError as exc:
        raise BadInput(f"policy file {path} cannot be read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"policy file {path} is not valid TOML ({exc}); fix the file") from exc
    if "sha256" in data:
        raise BadInput(f"policy file {path}: `sha256` is computed, not configured; remove it")
    try:
        return Policy.model_validate({**data, "sha256": hashlib.sha256(raw).hexdigest()})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "[data]"
        raise BadInput(
            f"policy file {path}: `{where}` {first['msg'].lower()}; "
            "see mlruns_template/release-policy.toml for the valid keys"
        ) from exc
