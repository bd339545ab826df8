"""The evidence of a proposal, typed and parsed in one place: which gates ran and how they
came out, what they saw (the metrics recomputed on the evaluation rows, both models re-scored,
the business value, the card), the champion compared against, and the hashes of the policy and
the model files. Stored as the version's `release.evidence` tag; the audit log records its
SHA-256, so what an approver is shown can be checked against what was proposed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from magenta_release.core import keys
from magenta_release.core.audit import dumps
from magenta_release.core.gates import Gate
from magenta_release.core.integrity import sha256_text
from magenta_release.core.records import VersionInfo


@dataclass(frozen=True)
class Evidence:
    run_id: str
    gates: tuple[Gate, ...]
    facts: dict[str, Any] = field(default_factory=dict)  # what the gates saw
    champion: int | None = None
    policy_sha256: str = ""
    manifest_sha256: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.gates) and all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[str]:
        return [g.name for g in self.gates if not g.passed]

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics the gates recomputed on the evaluation rows (empty if they could not)."""
        found = self.facts.get("metrics")
        return dict(found) if isinstance(found, dict) else {}

    @property
    def rescored(self) -> dict[str, Any] | None:
        """Both models on the same rows, when there was a champion to score."""
        found = self.facts.get("rescored")
        return found if isinstance(found, dict) else None

    @property
    def card(self) -> dict[str, Any]:
        found = self.facts.get("card")
        return found if isinstance(found, dict) else {}

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "gates": [g.to_json() for g in self.gates],
            "evidence": self.facts,
            "champion": self.champion,
            "policy_sha256": self.policy_sha256,
            "manifest_sha256": self.manifest_sha256,
        }

    def dumps(self) -> str:
        """The canonical text stored in the tag (and hashed into the audit log)."""
        return dumps(self.to_json())

    @property
    def sha256(self) -> str:
        return sha256_text(self.dumps())

    @classmethod
    def parse(cls, text: str | None) -> Evidence | None:
        """The evidence a stored text holds; None when it is missing or not evidence."""
        try:
            doc = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        try:
            gates = tuple(Gate(**g) for g in doc.get("gates") or [])
        except TypeError:
            return None
        facts = doc.get("evidence")
        champion = doc.get("champion")
        return cls(
            run_id=str(doc.get("run_id") or ""),
            gates=gates,
            facts=facts if isinstance(facts, dict) else {},
            champion=champion if isinstance(champion, int) else None,
            policy_sha256=str(doc.get("policy_sha256") or ""),
            manifest_sha256=str(doc.get("manifest_sha256") or ""),
        )

    @classmethod
    def of(cls, v: VersionInfo) -> Evidence:
        """A version's recorded evidence (empty when it has none it can read)."""
        return cls.parse(v.tags.get(keys.EVIDENCE)) or cls(v.run_id, ())
