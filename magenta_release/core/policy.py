"""The release policy: TOML validated into a frozen model. The policy in force is the one stored
in the MLflow store (`policy_store`); a file is only the input to `init` and `policy set`. Its
SHA-256 goes into every audit event, so an approval is tied to the exact rules it was made
under."""

from __future__ import annotations

import hashlib
import math
import tomllib
import unicodedata
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from magenta_release.core import identity
from magenta_release.core.contract import DataContract
from magenta_release.core.errors import BadInput
from magenta_release.core.metrics import HEADLINE_METRICS, RELATIVE_METRICS, REPORTED_METRICS

IDENTIFIER_COLUMNS = ("rating_account_id", "customer_id")
MAX_NOTIFY_SECONDS = 60


class _Frozen(BaseModel):
    # Unknown keys are refused: a typo such as `min_` must not silently disable a gate.
    model_config = ConfigDict(frozen=True, extra="forbid")


# Names the tool itself uses: a model's audit log is `<model>-audit-log`, its release lock
# `<model>-release-lock`, its health checks go to `<model>-health`, every policy version is
# a run in `magenta-release-policies`, and (server mode) the files of every proposed version
# are copied into a run of `magenta-release-releases`, which only the release authority writes.
LOG_SUFFIX, HEALTH_SUFFIX, POLICY_EXPERIMENT = "-audit-log", "-health", "magenta-release-policies"
LOCK_SUFFIX = "-release-lock"
RELEASES_EXPERIMENT = "magenta-release-releases"
RESERVED_SUFFIXES = (LOG_SUFFIX, HEALTH_SUFFIX, LOCK_SUFFIX)
RESERVED_EXPERIMENTS = (POLICY_EXPERIMENT, RELEASES_EXPERIMENT)
# A name reaches MLflow search filters; quotes and backslashes would end or escape the literal.
FORBIDDEN_NAME_CHARACTERS = "/:'\"\\`"
MAX_NAME = 200  # + "-audit-log" stays inside MLflow's 256-character name column


def reserved_name(name: str) -> bool:
    """Whether `name` is one the tool uses for its own registered models and experiments."""
    folded = name.casefold()
    return (
        folded.endswith(RESERVED_SUFFIXES)
        or f"{LOCK_SUFFIX}-break-" in folded
        or folded.strip() in RESERVED_EXPERIMENTS
    )


# Letters of other scripts that render like Latin ones (Unicode's confusables.txt, the
# lowercase letters a model name could be typed with): `churn` typed with a Cyrillic es
# (U+0441) must not be a second model beside `churn`.
CONFUSABLES = str.maketrans(
    {
        **dict.fromkeys("\u0430\u03b1", "a"),  # Cyrillic a, Greek alpha
        **dict.fromkeys("\u0441\u03f2", "c"),
        **dict.fromkeys("\u0435\u03b5", "e"),
        "\u0456": "i",
        "\u03b9": "i",
        "\u0458": "j",
        "\u03ba": "k",
        "\u043a": "k",
        **dict.fromkeys("\u043e\u03bf", "o"),
        **dict.fromkeys("\u0440\u03c1", "p"),
        "\u0455": "s",
        "\u03c4": "t",
        "\u03c5": "u",
        "\u0445": "x",
        "\u03c7": "x",
        "\u0443": "y",
        "\u0501": "d",
        "\u04bb": "h",
        "\u0578": "n",
        "\u057c": "n",
        "\u0131": "i",
        "\u0261": "g",
        "\u0432": "b",
        "\u043c": "m",
        "\u043d": "h",
        "\u0442": "t",
        "\u0412": "b",
        "\u041c": "m",
        "\u041d": "h",
        "\u0422": "t",
    }
)


def name_key(name: str) -> str:
    """What a model name reads as: NFKC, case-folded, invisible characters (format and
    control characters: zero-width spaces, joiners, direction marks) dropped, every dash and
    space-like character a hyphen, look-alike letters of other scripts mapped to the Latin
    ones. Two names with one key are one model to a reader of the UI, a terminal or a chat."""
    text = unicodedata.normalize("NFKC", name).casefold()
    kept = []
    for c in text:
        category = unicodedata.category(c)
        if category.startswith("C"):
            continue  # Cf (U+200B, U+200D, U+202E ...), Cc, Co, Cn: nothing a reader sees
        kept.append("-" if category in {"Pd", "Zs"} else c)
    folded = "".join(kept).strip("-").translate(CONFUSABLES)
    return unicodedata.normalize("NFKC", folded)


def look_alike(name: str, governed: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The governed model `name` would be mistaken for (another name with its `name_key`),
    or None."""
    key = name_key(name)
    for other in sorted(governed):
        if other != name and name_key(other) == key:
            return other
    return None


def check_not_look_alike(name: str, governed: list[str] | tuple[str, ...] | set[str]) -> None:
    """BadInput when `name` reads as a governed model's name without being it."""
    other = look_alike(name, governed)
    if other is not None:
        raise BadInput(
            f"model name {name!r} reads as {other!r}, which is governed (case, Unicode dashes, "
            "invisible characters or look-alike letters differ); use a name of its own"
        )


class ModelSection(_Frozen):
    registered_name: str = "churn-classifier"
    experiment: str = "churn"

    @field_validator("registered_name", "experiment")
    @classmethod
    def _usable(cls, name: str) -> str:
        if not name or name != name.strip() or len(name) > MAX_NAME:
            raise ValueError(f"must be 1 to {MAX_NAME} characters without surrounding spaces")
        if any(c in name for c in FORBIDDEN_NAME_CHARACTERS) or any(ord(c) < 32 for c in name):
            raise ValueError("may not contain quotes, backslashes, '/', ':' or control characters")
        if any(unicodedata.category(c).startswith("C") for c in name):
            raise ValueError(
                "may not contain invisible characters (zero-width spaces, joiners, direction "
                "marks): a name must read as what it is"
            )
        if reserved_name(name):
            raise ValueError(
                f"may not end in {', '.join(map(repr, RESERVED_SUFFIXES))}, contain "
                f"'{LOCK_SUFFIX}-break-' or be {' or '.join(map(repr, RESERVED_EXPERIMENTS))} "
                "(names the tool uses for audit logs, release locks, health checks, policies and "
                "released model files)"
            )
        return name


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
    # Ceilings relative to a constant predictor at the evaluation rows' base rate p (Brier
    # p(1-p), log loss its entropy): 1.0 = no worse than predicting p for everyone. Unlike an
    # absolute Brier ceiling, it means the same at a 3 % and at an 11 % churn rate.
    max_relative: dict[str, float] = Field(default_factory=dict)
    # A team's names for the metrics the gates compute (`roc_auc_score = "roc_auc"`): their
    # logged values are compared with the recomputed ones, and `runs`/`compare` show them.
    metric_names: dict[str, str] = Field(default_factory=dict)
    # "require": metrics_reproducible fails when no logged metric could be compared;
    # "warn": it passes and says so.
    metrics_reproducible: Literal["require", "warn"] = "require"
    # Evaluation rows that were some model's training rows are left out of the comparison
    # when at least this many (with both classes) remain; fewer: the proposal is refused.
    min_disjoint_rows: int = Field(default=500, ge=1)
    # true: a model whose training rows cannot be re-read fails `evaluation_disjoint`
    # (default: the gate says which model it could not check, and passes).
    require_training_input: bool = False

    @field_validator("metric_names")
    @classmethod
    def _known_metrics(cls, names: dict[str, str]) -> dict[str, str]:
        unknown = sorted({v for v in names.values() if v not in REPORTED_METRICS})
        if unknown:
            raise ValueError(
                f"maps to {', '.join(unknown)}, which the gates do not compute; map to one of "
                f"{', '.join(REPORTED_METRICS)}"
            )
        return names

    @field_validator("max_relative")
    @classmethod
    def _relative_metrics(cls, ceilings: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(ceilings) - set(RELATIVE_METRICS))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} cannot be relative to a constant predictor; use "
                f"{' or '.join(RELATIVE_METRICS)}"
            )
        if any(not (0 < v <= 10) or not math.isfinite(v) for v in ceilings.values()):
            raise ValueError("a relative ceiling is a ratio greater than 0 and at most 10")
        return ceilings


class ApprovalSection(_Frozen):
    approvers: tuple[str, ...] = ("release-manager",)
    # Who may replace this policy with `magenta-release policy set` (the server enforces it;
    # under four eyes a second owner or approver confirms the change there, see
    # `policy_change_problem`).
    policy_owners: tuple[str, ...] = ("release-manager",)
    four_eyes: bool = True
    # A proposal's evidence (champion, data, policy) ages: after this it cannot be approved.
    expires_after_days: float = Field(default=14, ge=0, le=365)
    # `magenta-release remind` nags about pending versions older than this.
    remind_after_days: float = Field(default=2, ge=0, le=365)


class NotifyEvent(StrEnum):
    """What a webhook can be told about (one message per event and webhook)."""

    PROPOSED = "proposed"
    GATES_FAILED = "gates_failed"
    APPROVED = "approved"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    INTEGRITY_ALERT = "integrity_alert"
    REMINDER = "reminder"
    HEALTH_ALERT = "health_alert"


def webhook_url_problem(url: str) -> str | None:
    """Why a URL may not receive release messages, or None. https only; plain http only to
    the loopback interface (a local relay or a test receiver): anything else (file:, ftp:,
    http to another host) would send the message in clear or read a local file."""
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and parsed.hostname in {"127.0.0.1", "localhost", "::1"}:
        return None
    return "must be an https:// URL (plain http only to 127.0.0.1 or localhost)"


class Webhook(_Frozen):
    """One endpoint. The URL of a Slack or Google Chat webhook is itself a credential, so it
    normally comes from the environment variable named by `url_env`; `url` is for endpoints
    that authenticate by the signature instead."""

    name: str = Field(min_length=1)
    kind: Literal["slack", "google_chat", "signed"]
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    events: tuple[NotifyEvent, ...] = tuple(NotifyEvent)

    @field_validator("url")
    @classmethod
    def _https(cls, url: str | None) -> str | None:
        problem = None if url is None else webhook_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _one_source(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"webhook {self.name!r} needs exactly one of `url` and `url_env`")
        if self.kind == "signed" and not self.secret_env:
            raise ValueError(
                f"webhook {self.name!r} is `signed` and needs `secret_env` (the name of the "
                "environment variable holding the signing secret)"
            )
        return self


class NotifySection(_Frozen):
    webhooks: tuple[Webhook, ...] = ()
    timeout_seconds: float = Field(default=5, gt=0, le=30)  # per attempt
    attempts: int = Field(default=3, ge=1, le=5)
    backoff_seconds: float = Field(default=1, ge=0, le=10)  # doubled after each attempt
    # Base of the MLflow UI for links when the tracking URI is not http(s) (postgresql://).
    ui_url: str | None = None
    # Webhooks to private (10/8, 172.16/12, 192.168/16, fc00::/7) addresses, e.g. a relay
    # inside the VPC. Link-local addresses (the metadata server 169.254.169.254) never.
    allow_private_addresses: bool = False

    @property
    def worst_case_seconds(self) -> float:
        """The longest a notification can take (webhooks are tried in parallel)."""
        waits = self.backoff_seconds * float(2 ** (self.attempts - 1) - 1)
        return self.attempts * self.timeout_seconds + waits

    @model_validator(mode="after")
    def _bounded(self) -> NotifySection:
        # Every command notifies after its state change, on its caller's time (a person at
        # the terminal, a Dagster step): a webhook may delay it by this much, never more.
        if self.worst_case_seconds > MAX_NOTIFY_SECONDS:
            raise ValueError(
                f"attempts x timeout_seconds + backoff may take {self.worst_case_seconds:g} s; "
                f"keep it under {MAX_NOTIFY_SECONDS} s (a release must not wait on a webhook)"
            )
        return self


class ValueSection(_Frozen):
    """What a churn campaign is worth: the campaign calls the top `campaign_fraction` of
    customers by score; a churner who is called stays with probability `offer_success_rate`
    and is then worth `monthly_revenue` for `retention_months`; every call costs
    `contact_cost`. The value gate compares both models' expected campaign value on the same
    evaluation rows; it blocks only when `blocking` is set."""

    campaign_fraction: float = Field(default=0.10, gt=0.0, le=1.0)
    contact_cost: float = Field(default=5.0, ge=0.0)
    monthly_revenue: float = Field(default=35.0, ge=0.0)
    retention_months: float = Field(default=12.0, gt=0.0)
    offer_success_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    blocking: bool = False
    max_loss: float = Field(default=0.0, ge=0.0)  # allowed drop in value before it blocks


class ResidencySection(_Frozen):
    allowed_artifact_locations: tuple[str, ...] = ("file:", "mlflow-artifacts:")
    allowed_tracking_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    # Where tables may be read from (training data, a run's evaluation rows, rows to score):
    # `file` is a local path, the others are URI schemes. Anything else (http, ftp, smb, ...)
    # is refused before it is opened: a run names its own evaluation source, and propose and
    # approve re-read it on the proposer's and the approver's machine.
    allowed_source_protocols: tuple[str, ...] = ("file", "duckdb", "synthetic", "gs")

    @field_validator("allowed_source_protocols")
    @classmethod
    def _schemes(cls, protocols: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in protocols if not p or not p.isascii() or not p.replace("-", "").isalnum()]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a protocol name (e.g. file, gs, duckdb)")
        return tuple(p.lower() for p in protocols)


class HealthSection(_Frozen):
    """Champion health (`magenta-release health`, the weekly `champion_health` asset): the
    champion re-scored on rows whose label window has closed, and PSI drift of its score and
    features against its training rows. A breach alerts; it never moves an alias."""

    # A row is labelled once this many days have passed since its date (churn is known late).
    label_window_days: int = Field(default=30, ge=0, le=730)
    # The rows' date column; none: every labelled row is used (and the result says so).
    date_column: str | None = None
    # With a date column: only rows whose window closed within this many days (the newest).
    lookback_days: int = Field(default=28, ge=1, le=3650)
    min_metric: float | None = None  # floor of the primary metric (None: no floor)
    max_drop: float = Field(default=0.05, ge=0.0)  # allowed drop from the value at release
    max_psi: float = Field(default=0.2, gt=0.0)  # PSI above this is drift (see health.py)
    bins: int = Field(default=10, ge=2, le=50)  # quantile bins of the training-time summary
    min_rows: int = Field(default=200, ge=10)  # fewer labelled rows than this: refuse to judge
    # Rows holding a categorical level the champion never saw in training (a new tariff): a
    # breach when a column has more than this share of them (0: any such row).
    max_unseen_share: float = Field(default=0.0, ge=0.0, le=1.0)


class Policy(_Frozen):
    """What a release must satisfy. Defaults equal `template/release-policy.toml`."""

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataContract = Field(default_factory=DataContract)
    gates: GateSection = Field(default_factory=GateSection)
    approval: ApprovalSection = Field(default_factory=ApprovalSection)
    residency: ResidencySection = Field(default_factory=ResidencySection)
    value: ValueSection = Field(default_factory=ValueSection)
    notify: NotifySection = Field(default_factory=NotifySection)
    sha256: str = Field(default="", description="SHA-256 of the file it was read from.")
    card: CardSection = Field(default_factory=lambda: CardSection())
    segments: SegmentSection | None = None  # no [segments]: no segment gates
    health: HealthSection = Field(default_factory=HealthSection)

    @property
    def registered_name(self) -> str:
        return self.model.registered_name


def policy_change_problem(
    approval: ApprovalSection, actor: str, proposer: str | None = None
) -> str | None:
    """Why `actor` may not take this step of changing the policy whose [approval] is
    `approval`, or None. Without four eyes one owner stores a change. Under four eyes one owner
    proposes it (`proposer` None) and another person confirms the same text: a second owner,
    or one of the approvers (so a policy with one owner can still change)."""
    owners, approvers = approval.policy_owners, approval.approvers
    if proposer is None:
        if not any(identity.same(actor, o) for o in owners):
            return f"{actor} is not one of the policy owners ({', '.join(owners)})"
        return None
    if identity.same(actor, proposer):
        return (
            f"{actor} proposed this policy change and cannot confirm it too (four eyes); "
            f"another owner or approver ({', '.join(dict.fromkeys((*owners, *approvers)))}) "
            "runs `magenta-release policy set` with the same file"
        )
    if not any(identity.same(actor, p) for p in (*owners, *approvers)):
        return (
            f"{actor} may not confirm a policy change: not one of its owners or approvers "
            f"({', '.join(dict.fromkeys((*owners, *approvers)))})"
        )
    return None


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; BadInput names the file, the problem and the fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"policy file {path} does not exist; start from "
            "magenta_release/template/release-policy.toml or `magenta-release policy show`"
        ) from None
    except (IsADirectoryError, NotADirectoryError):
        raise BadInput(f"policy file {path} is not a file; give a release-policy.toml") from None
    except OSError as exc:
        raise BadInput(f"policy file {path} cannot be read ({exc.strerror})") from exc
    return parse_policy(raw, f"policy file {path}")


def parse_policy(raw: bytes, where: str) -> Policy:
    """Validate policy TOML bytes; `where` names them in the error (a file, a stored version)."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{where} is not valid TOML ({exc}); fix the file") from exc
    if "sha256" in data:
        raise BadInput(f"{where}: `sha256` is computed, not configured; remove it")
    try:
        return Policy.model_validate({**data, "sha256": hashlib.sha256(raw).hexdigest()})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "[data]"
        raise BadInput(
            f"{where}: `{loc}` {first['msg'].lower()}; "
            "see magenta_release/template/release-policy.toml for the valid keys"
        ) from exc


class CardSection(_Frozen):
    """What the model card says about the model's purpose and limits (`[card]`): written by
    its owner, shown to the approver with every proposal and recorded with its evidence."""

    intended_use: str = ""
    owner: str = ""
    limitations: tuple[str, ...] = ()
    # The period the data covers, e.g. "2024-04 .. 2024-07"; the built-in generator knows its
    # own, other sources say nothing about it unless set here.
    data_period: str | None = None


MAX_SEGMENT_VALUES = 50  # a column with more distinct values is not a segment column


class SegmentSection(_Frozen):
    """Per-segment metrics and fairness (`[segments]`; absent: no segment gates). `columns`
    are cut by value, `bands` are numeric columns cut at the given edges ([low, high)). A
    segment with at least `min_rows` evaluation rows may lose at most `max_drop` of the primary
    metric against the champion on the same rows. The disparate-impact check compares the
    challenger's targeted (positive) rates across the segments of one column."""

    columns: tuple[str, ...] = ()
    bands: dict[str, tuple[float, ...]] = Field(default_factory=dict)
    min_rows: int = Field(default=1000, ge=1)
    max_drop: float = Field(default=0.05, ge=0.0, le=1.0)
    # Default: each model's own threshold (the `threshold` metric of its run, else 0.5).
    decision_threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    disparate_impact_column: str | None = None
    disparate_impact_min: float = Field(default=0.8, gt=0.0, le=1.0)  # the four-fifths rule
    disparate_impact_blocking: bool = False

    @field_validator("bands")
    @classmethod
    def _edges(cls, bands: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for column, edges in bands.items():
            finite = all(math.isfinite(e) for e in edges)
            if len(edges) < 2 or not finite or any(b <= a for a, b in pairwise(edges)):
                raise ValueError(
                    f"bands of {column!r} need at least two finite, strictly increasing "
                    "edges, e.g. [0, 30, 45, 60, 200]"
                )
        return bands

    @model_validator(mode="after")
    def _named(self) -> SegmentSection:
        both = sorted(set(self.columns) & set(self.bands))
        if both:
            raise ValueError(f"{', '.join(both)} listed both in `columns` and in `bands`")
        if not self.columns and not self.bands:
            raise ValueError("name at least one segment column in `columns` or `bands`")
        di = self.disparate_impact_column
        if di is not None and di not in self.columns and di not in self.bands:
            raise ValueError(
                f"disparate_impact_column {di!r} must be one of the segment `columns` or `bands`"
            )
        return self
