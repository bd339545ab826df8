"""Racing approvals and rollbacks from several processes on one store: exactly one winner per
round, a consistent alias/status picture and a verifiable audit chain."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CAROL, SMALL, make_cli, write_policy

WORKERS, ROUNDS = 4, 20
APPROVE_EVERY = 5  # rounds 0, 5, 10, 15 approve a fresh proposal; the others roll back


def _worker(home: str, who: str, tasks: Any, results: Any, barrier: Any) -> None:
    from magenta_release.errors import ReleaseError
    from magenta_release.release import approve, rollback
    from magenta_release.settings import Settings, disable_telemetry
    from magenta_release.store import Store

    disable_telemetry()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    store = Store.open(Settings(home=Path(home)))
    while (task := tasks.get()) is not None:
        round_no, op, arg = task
        barrier.wait()
        try:
            if op == "approve":
                approve(store, arg, reason=f"round {round_no}", by=who)
            else:
                rollback(store, reason=f"round {round_no}", to=arg, by=who)
            results.put((round_no, who, 0, ""))
        except ReleaseError as exc:
            results.put((round_no, who, exc.exit_code, str(exc)))


@pytest.mark.slow
def test_racing_approvals_and_rollbacks_have_one_winner(tmp_path: Path) -> None:
    from magenta_release.lifecycle import verify
    from magenta_release.release import propose
    from magenta_release.settings import Settings
    from magenta_release.store import Store

    home = tmp_path / "mlruns"
    cli = make_cli(home)
    assert cli("init").exit_code == 0
    write_policy(
        home,
        approval={"approvers": ["w0", "w1", "w2", "w3"], "four_eyes": True},
        **{"gates.max_regression": {"roc_auc": 1.0}},
    )
    approve_rounds = list(range(0, ROUNDS, APPROVE_EVERY))
    runs = [
        cli.json(
            "train", "--rows", str(SMALL // 4), "--seed", "7", "--param", f"n_estimators={20 + i}"
        )["run_id"]
        for i in range(len(approve_rounds))
    ]
    store = Store.open(Settings(home=home))

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    queues = [ctx.Queue() for _ in range(WORKERS)]
    procs = [
        ctx.Process(target=_worker, args=(str(home), f"w{i}", queues[i], results, barrier))
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        for r in range(ROUNDS):
            if r in approve_rounds:
                proposal = propose(store, runs[approve_rounds.index(r)], by=CAROL)
                assert proposal.status == "pending_approval", proposal.gates
                task: tuple[int, str, Any] = (r, "approve", proposal.version)
            else:
                champion = store.registry.alias("champion")
                assert champion is not None
                candidates = [
                    v.version
                    for v in store.registry.versions()
                    if v.version != champion.version
                    and v.tags.get("release.passed_gates") == "true"
                ]
                task = (r, "rollback", candidates[r % len(candidates)] if candidates else None)
            if task[1] == "rollback" and task[2] is None:
                continue
            expected_champion = task[2]
            for q in queues:
                q.put(task)
            outcomes = [results.get(timeout=240) for _ in range(WORKERS)]
            winners = [o for o in outcomes if o[2] == 0]
            assert len(winners) == 1, outcomes
            assert all(o[2] == 1 for o in outcomes if o[2] != 0), outcomes
            now = store.registry.alias("champion")
            assert now is not None and now.version == expected_champion
    finally:
        for q in queues:
            q.put(None)
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()

    check = verify(store)
    assert check.ok, check.problems
    versions = store.registry.versions()
    champion = store.registry.alias("champion")
    assert champion is not None
    assert [v.version for v in versions if v.status == "approved"] == [champion.version]
    assert not [v for v in versions if not v.status]
    assert store.tags.model_created(f"{store.name}-release-lock") is None  # lock released


def test_a_lock_left_by_a_killed_process_is_not_in_flight(store: Any) -> None:
    """Readers wait for a state change in flight (the release lock held), but not for a lock
    whose holder is dead: `status` after a crash answers at once."""
    import socket
    import subprocess
    import sys
    import time

    from magenta_release.lock import lock_held, lock_name

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for pid, in_flight in ((os.getpid(), True), (gone.pid, False)):
        name = lock_name(store)
        assert store.tags.try_create_model(
            name,
            {
                "owner": "test",
                "acquired_at": str(int(time.time() * 1000)),
                "host": socket.gethostname(),
                "pid": str(pid),
            },
        )
        assert lock_held(store) is in_flight
        assert store.tags.delete_model(name)
