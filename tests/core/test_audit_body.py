"""The hashed body of an event is the same canonical JSON as `dataclasses.asdict` gave (the
chain of every stored log was hashed that way), nested details included."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

from magenta_release.core.audit import Event, dumps


def _old_hash(event: Event) -> str:
    data = asdict(event)
    data.pop("hash")
    return hashlib.sha256(dumps(data).encode("utf-8")).hexdigest()


def test_the_hash_is_the_one_asdict_gave() -> None:
    events = [
        Event(
            1,
            "2026-12-04T10:00:00.000+00:00",
            "ann",
            "policy_set",
            None,
            None,
            None,
            None,
            "",
            "",
            "",
            "p" * 64,
            details={"approvers": ["a", "b"], "policy_version": 1},
        ),
        Event(
            2,
            "2026-12-04T10:01:00.000+00:00",
            "bo",
            "propose",
            3,
            "pending_approval",
            1,
            None,
            "ünïcode",
            "e" * 64,
            "m" * 64,
            "p" * 64,
            mlflow_user="bo@x",
            details={
                "run_id": "r" * 32,
                "gates": [{"name": "g", "passed": True}],
                "nested": {"t": (1, 2), "n": None},
            },
        ),
    ]
    for event in events:
        sealed = event.sealed()
        assert sealed.hash == _old_hash(event)
        assert sealed.compute_hash() == sealed.hash
    assert events[0].sealed().hash != events[1].sealed().hash  # a positive control
