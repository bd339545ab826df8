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
    from magenta_release.app.context import Context
    from magenta_release.app.decide import approve, rollback
    from magenta_release.core.errors import ReleaseError
    from magenta_release.core.settings import Settings, disable_telemetry
    from magenta_release.io.store import Store

    disable_telemetry()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    store = Store.open(Settings(home=Path(home)))
    while (task := tasks.get()) is not None:
        round_no, op, arg = task
        barrier.wait()
        ctx = Context.of(store, by=who)  # each decision is one command
        try:
            if op == "approve":
                approve(ctx, arg, reason=f"round {round_no}")
            else:
                rollback(ctx, reason=f"round {round_no}", to=arg)
            results.put((round_no, who, 0, ""))
        except ReleaseError as exc:
            results.put((round_no, who, exc.exit_code, str(exc)))


@pytest.mark.slow
def test_racing_approvals_and_rollbacks_have_one_winner(tmp_path: Path) -> None:
    from magenta_release.app.context import Context
    from magenta_release.app.propose import propose
    from magenta_release.app.services.lifecycle import verify
    from magenta_release.core.settings import Settings
    from magenta_release.io.store import Store

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
    registry = Context.of(store).registry

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
                proposal = propose(Context.of(store, by=CAROL), runs[approve_rounds.index(r)])
                assert proposal.status == "pending_approval", proposal.gates
                task: tuple[int, str, Any] = (r, "approve", proposal.version)
            else:
                champion = registry.alias("champion")
                assert champion is not None
                candidates = [
                    v.version
                    for v in registry.versions()
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
            now = registry.alias("champion")
            assert now is not None and now.version == expected_champion
    finally:
        for q in queues:
            q.put(None)
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()

    check = verify(Context.of(store))
    assert check.ok, check.problems
    versions = registry.versions()
    champion = registry.alias("champion")
    assert champion is not None
    assert [v.version for v in versions if v.status == "approved"] == [champion.version]
    assert not [v for v in versions if not v.status]
    assert store.tags.model_created(f"{registry.name}-release-lock") is None  # lock released


def test_a_lock_left_by_a_killed_process_is_not_in_flight(store: Any) -> None:
    """Readers wait for a state change in flight (the release lock held), but not for a lock
    whose holder is dead: the embedded store's lock is the kernel's, released when its holder
    exits, killed or not, so `status` after a crash answers at once."""
    import signal
    import subprocess
    import sys

    from magenta_release.io.lock import lock_held, release_lock

    code = (
        "import sys, time\n"
        "from magenta_release.app.context import Context\n"
        "from magenta_release.core.settings import Settings\n"
        "from magenta_release.io.lock import release_lock\n"
        "ctx = Context.open(Settings(home=sys.argv[1]))\n"
        "with release_lock(ctx.store, ctx.model):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(store.settings.home_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert lock_held(store.store, store.model)  # a live holder: in flight
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert not lock_held(store.store, store.model)  # killed: nothing in flight
        # the next writer takes it (a held lock would be StoreUnreachable after `wait`)
        with release_lock(store.store, store.model, wait=5):
            assert lock_held(store.store, store.model)
    finally:
        if holder.poll() is None:
            holder.kill()
