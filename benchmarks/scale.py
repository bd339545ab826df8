"""A store at a real team's scale for `make bench`: a long audit log, many versions, many runs,
built from one real release loop and copied in SQL (the client would take hours to write
20,000 events one by one), so that every event verifies and the registry agrees with the log.

`scale_store` trains, proposes and approves v1 (the champion), proposes and rejects v2 from a
copy of the run, then copies v2 (its registry row, its tags, its propose and reject events with
the chain recomputed) up to `versions`, fills the log with `repair` events (skipped by the
state replay; reading, parsing and verifying cost the same per event) up to `events`, moves the
head, and inserts `runs` finished runs (`fixtures.bulk_runs`)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from benchmarks.fixtures import bulk_runs, clone_run
from magenta_release.core.audit import HEAD_TAG, Event, dumps, event_key, log_name

WORKSPACE = "default"


@dataclasses.dataclass(frozen=True)
class Scale:
    home: Path
    model: str
    oldest_run: str  # the oldest of the experiment's runs (a bulk run)
    trained_run: str  # the champion's run (a real one, with its artifacts)
    events: int
    versions: int
    runs: int


def scale_store(home: Path, *, events: int, versions: int, runs: int, rows: int = 2000) -> Scale:
    from benchmarks.run import _released_store
    from magenta_release.app.context import Context
    from magenta_release.app.decide import reject
    from magenta_release.app.propose import propose
    from magenta_release.core.settings import Settings

    ctx, run = _released_store(home, rows)
    settings = Settings(home=home)
    db = settings.db_path
    model = ctx.model
    second = clone_run(db, run)
    v2 = propose(Context.open(settings, by="data-scientist"), second).version
    reject(Context.open(settings, by="release-manager"), v2, reason="benchmark copy")
    con = sqlite3.connect(db)
    try:
        with con:
            _copy_versions(con, model, int(v2), versions)
            _fill_log(con, model, int(v2), versions, events)
            experiment = con.execute(
                "select experiment_id from runs where run_uuid = ?", (run,)
            ).fetchone()[0]
    finally:
        con.close()
    bulk_runs(db, str(experiment), runs)  # older than the real runs
    con = sqlite3.connect(db)
    try:
        (oldest,) = con.execute(
            "select run_uuid from runs where experiment_id = ? order by start_time limit 1",
            (experiment,),
        ).fetchone()
    finally:
        con.close()
    return Scale(home, model, oldest, run, events, versions, runs)


def _copy_versions(con: sqlite3.Connection, model: str, template: int, versions: int) -> None:
    cols = [r[1] for r in con.execute("pragma table_info(model_versions)")]
    row = dict(
        zip(
            cols,
            con.execute(
                "select * from model_versions where name = ? and version = ?", (model, template)
            ).fetchone(),
            strict=True,
        )
    )
    tags = con.execute(
        'select "key", value from model_version_tags where name = ? and version = ?',
        (model, template),
    ).fetchall()
    new_rows, new_tags = [], []
    for k in range(template + 1, versions + 1):
        copy = {
            **row,
            "version": k,
            "creation_time": int(row["creation_time"]) + k,
            "last_updated_time": int(row["last_updated_time"]) + k,
        }
        new_rows.append([copy[c] for c in cols])
        new_tags += [(key, value, model, k, WORKSPACE) for key, value in tags]
    marks = ",".join("?" * len(cols))
    con.executemany(f"insert into model_versions ({','.join(cols)}) values ({marks})", new_rows)
    con.executemany(
        'insert into model_version_tags ("key", value, name, version, workspace) '
        "values (?,?,?,?,?)",
        new_tags,
    )


def _fill_log(
    con: sqlite3.Connection, model: str, template: int, versions: int, events: int
) -> None:
    stored = dict(
        con.execute(
            'select "key", value from registered_model_tags where name = ?', (log_name(model),)
        ).fetchall()
    )
    log = [Event(**json.loads(stored[k])) for k in sorted(stored) if k.startswith("event.")]
    pair = [e for e in log if e.version == template]  # its propose and its reject
    last = log[-1]
    added: list[Event] = []

    def add(event: Event, **changes: Any) -> None:
        nonlocal last
        last = dataclasses.replace(
            event, seq=last.seq + 1, prev_hash=last.hash, hash="", **changes
        ).sealed()
        added.append(last)

    for k in range(template + 1, versions + 1):
        for event in pair:
            add(event, version=k)
    filler = dataclasses.replace(
        last,
        action="repair",
        actor="bench",
        version=None,
        status=None,
        champion_before=None,
        champion_after=None,
        reason="benchmark filler",
        evidence_sha256="",
        manifest_sha256="",
        details={"filler": uuid.UUID(int=0).hex},
    )
    while last.seq < events:
        add(filler)
    con.executemany(
        'insert into registered_model_tags ("key", value, name, workspace) values (?,?,?,?)',
        [(event_key(e.seq), dumps(e.to_json()), log_name(model), WORKSPACE) for e in added],
    )
    con.execute(
        'update registered_model_tags set value = ? where name = ? and "key" = ?',
        (f"{last.seq}:{last.hash}", model, HEAD_TAG),
    )
