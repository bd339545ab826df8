"""Shared fixtures: real SQLite MLflow stores under tmp_path, the real CLI through CliRunner."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

# the demo's people, re-exported (release-manager is also the default policy's approver)
from magenta_release.cli.demo import DATA_SCIENTIST as DATA_SCIENTIST
from magenta_release.cli.demo import RELEASE_MANAGER as RELEASE_MANAGER
from magenta_release.core.settings import TELEMETRY_OFF

os.environ.update(TELEMETRY_OFF)
# The people in the tests, defined once. alice and bob approve (the `trained` policy); carol is
# the data scientist who proposes; mallory is nobody's approver.
ALICE, BOB, CAROL, MALLORY = "alice", "bob", "carol", "mallory"
APPROVERS = [ALICE, BOB]
SMALL = 4000  # accounts per training run in tests: enough churners for stable metrics
# Test runs evaluate on ~800 rows (~25 churners): floors and allowed drops sized for that, so
# `other` passes and `worse` fails its regression gate against `good`.
SMALL_DATA_GATES: dict[str, dict[str, Any]] = {
    "gates.min": {"roc_auc": 0.65},
    "gates.max_regression": {"roc_auc": 0.05},
}


def telemetry_free_env() -> dict[str, str]:
    """This process's environment without the switches the tool must set by itself (and
    without CI/pytest markers, which MLflow also treats as 'telemetry off')."""
    drop = {*TELEMETRY_OFF, "CI", "PYTEST_CURRENT_TEST", "PYTEST_VERSION"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@dataclass(frozen=True)
class Result:
    """What one `magenta-release` call did: exit code and both streams."""

    exit_code: int
    stdout: str
    stderr: str


def invoke(args: list[str], env: dict[str, str | None], input: str | None = None) -> Result:
    """Run the real entry point (`magenta_release.cli.run`) in-process with isolated streams."""
    from magenta_release.cli import run

    with CliRunner().isolation(input=input, env=env) as (out, err, _):
        code = run(args)
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return Result(code, stdout, stderr)


def local_identity(by: str) -> dict[str, str | None]:
    """Who acts against a local store: the name given, as `--by` would (no login there)."""
    return {"MAGENTA_RELEASE_USER": by}


@dataclass
class Cli:
    """Runs `magenta-release` in-process against one store: the one CLI helper of the suite
    (local stores from `make_cli`, servers from `make_server_cli`)."""

    home: Path
    env: dict[str, str | None]
    # How `by=` becomes environment: a name for a local store, credentials for a server (where
    # the person is whoever the server authenticates).
    identity: Callable[[str], dict[str, str | None]] = local_identity

    def __call__(
        self,
        *args: str,
        by: str | None = None,
        input: str | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        merged = dict(self.env)
        if by:
            merged.update(self.identity(by))
        merged.update(env or {})
        return invoke(list(args), merged, input)

    def json(self, *args: str, by: str | None = None, code: int = 0) -> dict[str, Any]:
        """Run with `--json`, check the exit code, return the one JSON object printed."""
        result = self(*args, "--json", by=by)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        doc = json.loads(result.stdout)
        assert isinstance(doc, dict), doc
        return doc


def snapshot(home: Path) -> dict[str, str]:
    """SHA-256 of every file under a store folder: equal snapshots mean nothing was written."""
    import hashlib

    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


def make_cli(home: Path) -> Cli:
    """The CLI against the local store at `home` (its own policy file, no tracking server)."""
    return Cli(
        home,
        {
            "MAGENTA_RELEASE_HOME": str(home),
            "MLFLOW_TRACKING_URI": None,
            "MAGENTA_RELEASE_POLICY": None,
            "NO_COLOR": "1",
            **TELEMETRY_OFF,
        },
    )


def make_server_cli(url: str, policy: Path, credentials: Callable[[str], dict[str, str]]) -> Cli:
    """The CLI against a tracking server with the policy file `policy`; `by=` logs in with
    `credentials(by)` and never sets MAGENTA_RELEASE_USER (the server says who it is).
    `home` is the policy's folder: server mode keeps no local store."""

    def login(by: str) -> dict[str, str | None]:
        return {**credentials(by), "MAGENTA_RELEASE_USER": None}

    return Cli(
        policy.parent,
        {
            **TELEMETRY_OFF,
            "NO_COLOR": "1",
            "MLFLOW_TRACKING_URI": url,
            "MAGENTA_RELEASE_POLICY": str(policy),  # what `init` stores
            # a shared server governs several models: say which one, as a team's shell would
            "MAGENTA_RELEASE_MODEL": "churn-classifier",
            "MAGENTA_RELEASE_USER": None,
        },
        identity=login,
    )


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A CLI bound to a fresh, initialised store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MAGENTA_RELEASE_POLICY", raising=False)
    runner = make_cli(tmp_path / "mlruns")
    assert runner("init").exit_code == 0
    return runner


@pytest.fixture
def settings(cli: Cli) -> Any:
    from magenta_release.core.settings import Settings

    return Settings(home=cli.home)


@pytest.fixture
def store(settings: Any) -> Any:
    """A context for the store's only model (what a library call works on)."""
    from magenta_release.app.context import Context

    return Context.open(settings)


def write_policy(home: Path, **sections: dict[str, Any]) -> Path:
    """Write `home/release-policy.toml` (the previous one written here, else the template)
    with some sections replaced (TOML written by hand); if `home` is an embedded store, store
    it as the new policy version with `policy set`, as one of the current policy's owners."""
    import tomllib

    import tomli_w

    from magenta_release.io.store import POLICY_FILE, TEMPLATE_DIR

    path = home / POLICY_FILE
    base = path if path.exists() else TEMPLATE_DIR / POLICY_FILE
    data = tomllib.loads(base.read_text())
    for name, values in sections.items():
        target = data
        for part in name.split("."):
            target = target.setdefault(part, {})
        target.clear()
        target.update(values)
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    if (home / "mlflow.db").exists():
        set_stored_policy(home, path)
    return path


def set_stored_policy(home: Path, path: Path, reason: str = "test policy") -> None:
    """`policy set` on the embedded store at `home`, as the current policy's first owner."""
    from magenta_release.app.context import Context
    from magenta_release.app.policies import set_policy
    from magenta_release.core.settings import Settings

    ctx = Context.open(Settings(home=home, tracking_uri=None))
    owner = ctx.policy.approval.policy_owners[0]
    set_policy(ctx.store, path, reason=reason, by=owner)


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One store per test worker with three finished runs on the same data: `good` (depth 3),
    `worse` (depth 8, few trees) and `other` (depth 4)."""
    home = tmp_path_factory.mktemp("trained") / "mlruns"
    runner = make_cli(home)
    assert runner("init").exit_code == 0
    runs = {}
    for name, params in (
        ("good", ["max_depth=3"]),
        ("worse", ["max_depth=8", "n_estimators=15", "learning_rate=0.5"]),
        ("other", ["max_depth=4"]),
    ):
        runs[name] = runner.json(
            "train",
            "--rows",
            str(SMALL),
            "--seed",
            "7",
            *[x for p in params for x in ("--param", p)],
            "--run-name",
            name,
        )["run_id"]
    return {"home": home, "runs": runs}


def copy_store(src: Path, dst: Path) -> Path:
    """Copy a local store and point its recorded artifact locations at the copy."""
    import shutil
    import sqlite3

    shutil.copytree(src, dst)
    old, new = src.resolve().as_uri(), dst.resolve().as_uri()
    con = sqlite3.connect(dst / "mlflow.db")
    with con:
        con.execute(
            "update experiments set artifact_location = replace(artifact_location, ?, ?)",
            (old, new),
        )
        con.execute("update runs set artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    con.close()
    # MLflow caches each run's artifact repository by run id for the life of the process;
    # the copy has the same run ids with new locations.
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.clear()
    return dst


@dataclass
class Trained:
    cli: Cli
    runs: dict[str, str]


@pytest.fixture
def trained(
    trained_template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Trained:
    """A private copy of the trained store, with approvers alice and bob."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = copy_store(trained_template["home"], tmp_path / "mlruns")
    write_policy(home, approval={"approvers": APPROVERS, "four_eyes": True}, **SMALL_DATA_GATES)
    return Trained(make_cli(home), dict(trained_template["runs"]))


def release_good_then_propose_other(t: Trained) -> Trained:
    """v1 (`good`, proposed by carol) approved by alice: @champion, no @previous; then v2
    (`other`, proposed by carol) pending approval as @challenger."""
    assert t.cli.json("propose", t.runs["good"], by=CAROL)["version"] == 1
    assert t.cli.json("approve", "1", "--reason", "baseline", "--yes", by=ALICE)["champion"] == 1
    proposal = t.cli.json("propose", t.runs["other"], by=CAROL)
    assert (proposal["version"], proposal["status"]) == (2, "pending_approval")
    return t


@pytest.fixture(scope="session")
def released_template(
    trained_template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One store per test worker: the trained runs, v1 approved, v2 pending (approvers alice
    and bob). Built once; `released` hands out copies."""
    home = copy_store(trained_template["home"], tmp_path_factory.mktemp("released") / "mlruns")
    write_policy(home, approval={"approvers": APPROVERS, "four_eyes": True}, **SMALL_DATA_GATES)
    release_good_then_propose_other(Trained(make_cli(home), dict(trained_template["runs"])))
    return {"home": home, "runs": dict(trained_template["runs"])}


@pytest.fixture
def released(
    released_template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Trained:
    """A private copy of a store with v1 approved (@champion, no @previous) and v2 pending
    (@challenger), both proposed by carol, v1 approved by alice; approvers alice and bob."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = copy_store(released_template["home"], tmp_path / "mlruns")
    return Trained(make_cli(home), dict(released_template["runs"]))
