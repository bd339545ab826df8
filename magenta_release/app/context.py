"""The context of one command: the gateway to the store, the governed model, the policy in
force for it, who is acting, and the model's audit log, read and verified once.

A use case receives a `Context`; what it hands on is narrower: the gateway (`ctx.store`, or
`ctx.runs` / `ctx.registry` for the model's own experiment and versions) to adapters, plain
values (the policy, the log's events) to the rules in `core`. The log is read on first use,
so a writer that takes the release lock first reads it once, under the lock; each event the
command appends extends the snapshot instead of a second read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from magenta_release.core import identity
from magenta_release.core.audit import HEAD_TAG, Event, Log, log_name
from magenta_release.core.errors import BadInput, IntegrityViolation, PolicyRefused
from magenta_release.core.policy import ModelSection, Policy
from magenta_release.core.settings import Settings
from magenta_release.io import audit_log, policy_store
from magenta_release.io import authority as release_authority
from magenta_release.io.store import Registry, Runs, Store


@dataclass
class Context:
    """One command's view of one governed model (see the module docstring)."""

    store: Store
    model: str
    by: str | None = None
    # False inside the server's release authority: the caller's machine delivers the
    # notifications of what it asked for (webhook secrets live with it, not with the server)
    notifies: bool = True
    _log: Log | None = field(default=None, repr=False)
    _policy: tuple[policy_store.PolicyVersion, Policy] | None = field(default=None, repr=False)

    # ---- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, model: str | None = None, by: str | None = None) -> Context:
        """The context for `model` (else MAGENTA_RELEASE_MODEL, else the only model governed
        in the store). Nothing is read beyond the model's name until it is needed."""
        store = Store.open(settings)
        return cls.of(store, model or settings.model, by)

    @classmethod
    def of(cls, store: Store, model: str | None = None, by: str | None = None) -> Context:
        """The context for `model` on an open store: a name the store governs (BadInput, exit
        2, for one it does not; IntegrityViolation, exit 3, for a released model whose audit
        log is gone), else the only model it governs."""
        if model is None:
            try:
                return cls(store, policy_store.default_model(store.client, None), by)
            except BadInput:
                governed = set(policy_store.governed_models(store.client))
                for name in policy_store.models_with_head(store.client):
                    if name not in governed:
                        _ungoverned(store, name)  # a released model without its log: exit 3
                raise
        try:
            ModelSection(registered_name=model)
        except ValidationError as exc:
            why = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise BadInput(f"--model {model!r} is not a model name: {why}") from None
        if model not in policy_store.governed_models(store.client):
            _ungoverned(store, model)
        return cls(store, model, by)

    # ---- what the command works on --------------------------------------------------------
    @classmethod
    def each(cls, store: Store, model: str | None = None) -> list[Context]:
        """A context for `model`, or one for each model the store governs (sorted)."""
        if model is not None:
            return [cls.of(store, model)]
        names = policy_store.governed_models(store.client)
        return [cls(store, name) for name in names] if names else [cls.of(store)]

    @property
    def settings(self) -> Settings:
        return self.store.settings

    @property
    def log(self) -> Log:
        """The model's audit log: read on first use, then carried (and extended by `record`)."""
        if self._log is None:
            self._log = audit_log.read(self.store, self.model)
        return self._log

    def reread(self) -> Log:
        """Read the log again (what a writer does after waiting for the lock held by another)."""
        self._log = None
        return self.log

    @property
    def policy_version(self) -> policy_store.PolicyVersion:
        return self._policy_pair()[0]

    @property
    def policy(self) -> Policy:
        """The policy in force: the newest version the log records, never a file in the
        caller's shell."""
        return self._policy_pair()[1]

    def _policy_pair(self) -> tuple[policy_store.PolicyVersion, Policy]:
        try:
            record = policy_store.current_version(self.log)
        except BadInput:
            self.check_log_not_gone()
            raise
        if self._policy is None or self._policy[0] != record:
            self._policy = (record, policy_store.policy_of(self.store.client, record))
        return self._policy

    @property
    def authority(self) -> release_authority.Authority | None:
        """The tracking server's release authority (server mode): it writes every governed
        change the command decides. None for an embedded store, which the command writes."""
        return release_authority.of(self.store)

    @property
    def runs(self) -> Runs:
        """The runs of the model's experiment."""
        return self.store.runs(self.policy.model.experiment)

    @property
    def registry(self) -> Registry:
        """The model's versions and aliases."""
        return self.store.registry(self.model)

    @property
    def actor(self) -> str:
        """Who is acting, normalised (`identity.normalise`). Where the store authenticates
        (server mode), it is the authenticated user, and `--by` may only name that user; in
        embedded mode it is the typed name (--by, else MAGENTA_RELEASE_USER, else the OS
        login), which nothing verifies."""
        typed = self.settings.actor(self.by)
        authenticated = self.store.whoami()
        if authenticated:
            if (self.by or self.settings.user) and not identity.same(typed, authenticated):
                raise PolicyRefused(
                    f"--by {typed} is not the authenticated MLflow user {authenticated}; "
                    "act as yourself (leave --by out) or log in as that person"
                )
            return identity.normalise(authenticated)
        return identity.normalise(typed)

    def check_log_not_gone(self) -> None:
        """A model with no policy in its log, but with versions, a recorded head or stored
        policy runs, lost its log: tampering (exit 3), never a model to `init` afresh. (A
        log from before stored policies has events: `policy set` stores its first policy.)"""
        if self.log.entries:
            return
        _ungoverned(self.store, self.model, missing_ok=True)

    def check_residency(self) -> None:
        """Refuse (exit 3) before any write if the tracking host or the model experiment's
        artifact location is outside the policy's allow-lists."""
        self.store.check_residency(self.policy.residency, self.policy.model.experiment)

    # ---- writing the log ------------------------------------------------------------------
    def record(self, **fields: Any) -> Event:
        """Append one event to the log (call under the release lock, after checking the
        registry against the log): the event follows the snapshot, which then includes it."""
        # a `policy_set` event names the policy it stores, not the one it replaces
        policy_sha256 = fields.pop("policy_sha256", None) or self.policy.sha256
        event, self._log = audit_log.append(
            self.store, self.log, policy_sha256=policy_sha256, **fields
        )
        return event


def _ungoverned(store: Store, model: str, *, missing_ok: bool = False) -> None:
    """Why `model` cannot be acted on: never released here (BadInput; None with
    `missing_ok`), or released and its audit log gone, which is tampering (nothing re-creates
    a log: restore a backup). Released: it has versions, a recorded audit head, or stored
    policy versions."""
    tags = store.tags.model_tags_or_none(model)
    released = (tags is not None and (HEAD_TAG in tags or store.registry(model).versions())) or (
        bool(policy_store.stored_runs(store.client, model))
    )
    if released:
        raise IntegrityViolation(
            f"model {model!r} has versions, a recorded audit head or stored policies but no "
            f"audit log ({log_name(model)}): it was deleted; nothing was changed — restore the "
            "store from a backup (init or policy set would start a new record over it)"
        )
    if missing_ok:
        return
    raise BadInput(
        f"model {model!r} has no release policy in this store; store one with "
        "`magenta-release policy set FILE --reason ...` (or run `magenta-release init`)"
    )
