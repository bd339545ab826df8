"""The bad-input corpus: every case exits with its documented code, prints one `error:` line
and no traceback, and leaves the store byte-identical."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from magenta_release.cli.demo import write_customers
from tests.conftest import (
    ALICE,
    APPROVERS,
    BOB,
    CAROL,
    MALLORY,
    RELEASE_MANAGER,
    SMALL_DATA_GATES,
    Trained,
    invoke,
    make_cli,
    snapshot,
    write_policy,
)


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    needle: str = ""
    env: dict[str, str | None] | None = None
    prepare: Callable[[Path], None] | None = None  # writes files into the case folder


def _customers(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(write_customers(folder / "good.parquet", seed=4, rows=200))


def _good(folder: Path) -> None:
    _customers(folder)


def _good_and_output_dir(folder: Path) -> None:
    _customers(folder)
    (folder / "od.parquet").mkdir()


def _write_parquet(
    name: str, change: Callable[[pd.DataFrame], pd.DataFrame]
) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        change(_customers(folder)).to_parquet(folder / name, index=False)

    return prepare


def _write_bytes(name: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        (folder / name).write_bytes(data(folder) if callable(data) else data)

    return prepare


def _truncated(folder: Path) -> bytes:
    buf = io.BytesIO()
    _customers(folder).to_parquet(buf, index=False)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def _csv(folder: Path) -> str:
    text: str = _customers(folder).to_csv(index=False)
    return text


def _all_text_csv(folder: Path) -> bytes:
    header = _csv(folder).splitlines()[0]
    return f"{header}\n{','.join(['x'] * len(header.split(',')))}\n".encode()


def _carol_approves(folder: Path) -> None:
    """A policy in which carol, who proposed v2, is an approver too: only four eyes stops her."""
    write_policy(
        folder / "mlruns",
        approval={"approvers": [*APPROVERS, CAROL], "four_eyes": True},
        **SMALL_DATA_GATES,
    )


def _set(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda f: f.assign(**{column: value})


POLICY_CASES = {
    "policy-malformed-toml": (b"[gates\nprimary_metric = ", "is not valid TOML"),
    "policy-unknown-key": (b"[gates]\nmin_roc = 0.9\n", "`gates.min_roc` extra inputs"),
    "policy-wrong-type": (b"[approval]\napprovers = 5\n", "`approval.approvers`"),
    "policy-sha256-key": (b'sha256 = "abc"\n', "computed, not configured"),
    "policy-not-utf8": (b'[model]\nexperiment = "\xe4"\n', "is not valid TOML"),
    "policy-bad-bootstrap": (b"[gates]\nbootstrap_confidence = 2\n", "bootstrap_confidence"),
}

RUN = "0123456789abcdef0123456789abcdef"
CASES = [
    # propose / approve / reject / rollback
    Case("propose-unknown-run", ["propose", RUN], 2, "does not exist"),
    Case("propose-malformed-run", ["propose", "../../etc/passwd"], 2, "is malformed"),
    Case("propose-empty-run", ["propose", ""], 2, "is malformed"),
    Case(
        "approve-unknown-version", ["approve", "999", "--reason", "x", "--yes"], 2, "does not exist"
    ),
    Case(
        "approve-non-number",
        ["approve", "abc", "--reason", "x", "--yes"],
        2,
        "not a version number",
    ),
    Case("approve-zero", ["approve", "0", "--reason", "x", "--yes"], 2, "not a version number"),
    Case("approve-negative", ["approve", "-1", "--reason", "x", "--yes"], 2, "No such option: -1"),
    Case("approve-no-reason", ["approve", "2", "--yes"], 2, "Missing option '--reason'"),
    Case(
        "approve-empty-reason", ["approve", "2", "--reason", " ", "--yes"], 2, "--reason is empty"
    ),
    Case(
        "approve-approved",
        ["approve", "1", "--reason", "x", "--yes", "--by", BOB],
        1,
        "only pending_approval",
    ),
    Case(
        "approve-own-proposal",
        ["approve", "2", "--reason", "x", "--yes", "--by", CAROL],
        1,
        "carol proposed version 2 and cannot approve it too (four eyes)",
        prepare=_carol_approves,
    ),
    Case(
        "approve-non-approver",
        ["approve", "2", "--reason", "x", "--yes", "--by", MALLORY],
        1,
        "mallory may not approve: not in `approvers`",
    ),
    Case("reject-unknown", ["reject", "999", "--reason", "x"], 2, "does not exist"),
    Case("reject-approved", ["reject", "1", "--reason", "x", "--by", ALICE], 1, "only pending"),
    Case(
        "rollback-unknown",
        ["rollback", "--to", "999", "--reason", "x", "--yes", "--by", ALICE],
        2,
        "does not exist",
    ),
    Case(
        "rollback-no-previous",
        ["rollback", "--reason", "x", "--yes", "--by", ALICE],
        1,
        "no @previous",
    ),
    Case(
        "rollback-to-pending",
        ["rollback", "--to", "2", "--reason", "x", "--yes", "--by", ALICE],
        1,
        "roll back only to",
    ),
    Case(
        "rollback-non-approver",
        ["rollback", "--to", "2", "--reason", "x", "--yes", "--by", MALLORY],
        1,
        "mallory may not roll back: not in `approvers`",
    ),
    # predict: model selection
    Case(
        "predict-unknown-version",
        ["predict", "--input", "good.parquet", "--output", "o.parquet", "--model", "999"],
        2,
        "does not exist",
        prepare=_good,
    ),
    Case(
        "predict-unknown-alias",
        ["predict", "--input", "good.parquet", "--output", "o.parquet", "--model", "staging"],
        2,
        "neither",
        prepare=_good,
    ),
    Case(
        "predict-pending-version",
        ["predict", "--input", "good.parquet", "--output", "o.parquet", "--model", "2"],
        1,
        "approved once",
        prepare=_good,
    ),
    # predict: input files
    Case(
        "predict-missing-input",
        ["predict", "--input", "nope.parquet", "--output", "o.parquet"],
        2,
        "does not exist",
    ),
    Case(
        "predict-input-is-dir",
        ["predict", "--input", "d.parquet", "--output", "o.parquet"],
        2,
        "no columns",
        prepare=lambda f: (f / "d.parquet").mkdir(),
    ),
    Case(
        "predict-wrong-suffix",
        ["predict", "--input", "x.txt", "--output", "o.parquet"],
        2,
        "unknown file type",
        prepare=_write_bytes("x.txt", b"a,b\n1,2\n"),
    ),
    Case(
        "predict-empty-parquet",
        ["predict", "--input", "e.parquet", "--output", "o.parquet"],
        2,
        "cannot be read",
        prepare=_write_bytes("e.parquet", b""),
    ),
    Case(
        "predict-truncated-parquet",
        ["predict", "--input", "t.parquet", "--output", "o.parquet"],
        2,
        "cannot be read",
        prepare=_write_bytes("t.parquet", _truncated),
    ),
    Case(
        "predict-zero-rows",
        ["predict", "--input", "z.parquet", "--output", "o.parquet"],
        2,
        "has no rows",
        prepare=_write_parquet("z.parquet", lambda f: f.iloc[:0]),
    ),
    Case(
        "predict-wrong-schema",
        ["predict", "--input", "w.parquet", "--output", "o.parquet"],
        2,
        "missing model columns: age",
        prepare=_write_parquet("w.parquet", lambda f: f.drop(columns=["age"])),
    ),
    Case(
        "predict-text-in-number",
        ["predict", "--input", "s.parquet", "--output", "o.parquet"],
        2,
        "column age must be numeric",
        prepare=_write_parquet("s.parquet", _set("age", "old")),
    ),
    Case(
        "predict-inf",
        ["predict", "--input", "i.parquet", "--output", "o.parquet"],
        2,
        "infinite",
        prepare=_write_parquet("i.parquet", _set("used_gb", float("inf"))),
    ),
    Case(
        "predict-huge",
        ["predict", "--input", "h.parquet", "--output", "o.parquet"],
        2,
        "beyond 1e12",
        prepare=_write_parquet("h.parquet", _set("gross_mrc", 1e300)),
    ),
    Case(
        "predict-nested-values",
        ["predict", "--input", "n.parquet", "--output", "o.parquet"],
        2,
        "must be flat",
        prepare=_write_parquet(
            "n.parquet", lambda f: f.assign(smartphone_brand_group=[["a", "b"]] * len(f))
        ),
    ),
    Case(
        "predict-no-identifier",
        ["predict", "--input", "n.parquet", "--output", "o.parquet"],
        2,
        "none of the identifier columns",
        prepare=_write_parquet(
            "n.parquet", lambda f: f.drop(columns=["rating_account_id", "customer_id"])
        ),
    ),
    Case(
        "predict-empty-csv",
        ["predict", "--input", "e.csv", "--output", "o.csv"],
        2,
        "has no rows",
        prepare=_write_bytes("e.csv", b""),
    ),
    Case(
        "predict-header-only-csv",
        ["predict", "--input", "h.csv", "--output", "o.csv"],
        2,
        "has no rows",
        prepare=_write_bytes("h.csv", lambda f: _csv(f).splitlines()[0].encode()),
    ),
    Case(
        "predict-non-utf8-csv",
        ["predict", "--input", "l.csv", "--output", "o.csv"],
        2,
        "not UTF-8",
        prepare=_write_bytes(
            "l.csv", lambda f: _csv(f).replace("Other", "Öther").encode("latin-1")
        ),
    ),
    Case(
        "predict-duplicate-columns-csv",
        ["predict", "--input", "d.csv", "--output", "o.csv"],
        2,
        "duplicate columns: age",
        prepare=_write_bytes(
            "d.csv",
            lambda f: _csv(f).replace("age,", "age,age,", 1).replace("\n", "\n", 1).encode(),
        ),
    ),
    Case(
        "predict-wrong-types-csv",
        ["predict", "--input", "t.csv", "--output", "o.csv"],
        2,
        "must be numeric",
        prepare=_write_bytes(
            "t.csv",
            _all_text_csv,
        ),
    ),
    # predict: output
    Case(
        "predict-output-suffix",
        ["predict", "--input", "good.parquet", "--output", "o.json"],
        2,
        "must end in .parquet or .csv",
        prepare=_good,
    ),
    Case(
        "predict-output-missing-folder",
        ["predict", "--input", "good.parquet", "--output", "missing/o.parquet"],
        2,
        "does not exist",
        prepare=_good,
    ),
    Case(
        "predict-output-traversal",
        ["predict", "--input", "good.parquet", "--output", "../../no-such-dir-magenta/x.parquet"],
        2,
        "does not exist",
        prepare=_good,
    ),
    Case(
        "predict-output-is-input",
        ["predict", "--input", "good.parquet", "--output", "good.parquet"],
        2,
        "must differ",
        prepare=_good,
    ),
    Case(
        "predict-output-is-dir",
        ["predict", "--input", "good.parquet", "--output", "od.parquet"],
        2,
        "cannot be written",
        prepare=_good_and_output_dir,
    ),
    # train (validated before anything is written)
    Case(
        "train-negative-rows",
        ["train", "--rows", "-5"],
        2,
        "--rows': Input should be greater than or equal to 200",
    ),
    Case("train-zero-rows", ["train", "--rows", "0"], 2, "Input should be"),
    Case("train-absurd-rows", ["train", "--rows", "1000000000000"], 2, "Input should be"),
    Case("train-text-rows", ["train", "--rows", "many"], 2, "Invalid value for '--rows'"),
    Case("train-negative-seed", ["train", "--seed", "-1"], 2, "negative"),
    Case("train-param-no-value", ["train", "--param", "max_depth"], 2, "KEY=VALUE"),
    Case(
        "train-param-injection",
        ["train", "--param", "max_depth=3; rm -rf /"],
        2,
        "must be an integer",
    ),
    Case("train-param-dunder", ["train", "--param", "__class__=1"], 2, "not a tunable"),
    Case("train-param-nan", ["train", "--param", "learning_rate=nan"], 2, "must be a number"),
    Case("train-param-huge", ["train", "--param", "n_estimators=1000000000"], 2, "out of range"),
    Case("train-run-name-traversal", ["train", "--run-name", "../../x"], 2, "--run-name"),
    Case("train-run-name-newline", ["train", "--run-name", "a\nb"], 2, "--run-name"),
    Case("train-run-name-empty", ["train", "--run-name", ""], 2, "--run-name"),
    # compare / history / gc / usage
    Case(
        "compare-metric-injection",
        ["compare", "--top", "3", "--metric", "roc_auc; drop"],
        2,
        "not a metric name",
    ),
    Case(
        "compare-last-zero",
        ["compare", "--last", "0"],
        2,
        "--last': Input should be greater than or equal to 1",
    ),
    Case("compare-top-huge", ["compare", "--top", "100000"], 2, "Input should be"),
    Case("compare-unknown-run", ["compare", RUN], 2, "does not exist"),
    Case("history-limit-zero", ["history", "--limit", "0"], 2, "Input should be"),
    Case("gc-negative-days", ["gc", "--older-than", "-1"], 2, "Input should be"),
    Case("unknown-command", ["deploy"], 2, "No such command"),
    Case("unknown-option", ["status", "--force"], 2, "No such option"),
    # the store itself
    Case(
        "store-is-a-file",
        ["status"],
        2,
        "is a file",
        env={"MAGENTA_RELEASE_HOME": "FILE"},
        prepare=_write_bytes("FILE", b"x"),
    ),
    Case(
        "store-missing",
        ["status"],
        2,
        "run `magenta-release init` first",
        env={"MAGENTA_RELEASE_HOME": "nowhere"},
    ),
    Case(
        "server-unreachable",
        ["status"],
        4,
        "cannot be reached",
        env={
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        },
    ),
    Case(
        "tracking-uri-unknown-scheme",
        ["status"],
        2,
        "tracking URI",
        env={"MLFLOW_TRACKING_URI": "ftp://example.com/mlflow"},
    ),
    *[
        Case(
            name,
            ["policy", "set", f"{name}.toml", "--reason", "x", "--by", RELEASE_MANAGER],
            2,
            needle,
            prepare=_write_bytes(f"{name}.toml", body),
        )
        for name, (body, needle) in POLICY_CASES.items()
    ],
    Case(
        "policy-missing",
        ["policy", "set", "absent.toml", "--reason", "x", "--by", RELEASE_MANAGER],
        2,
        "does not exist",
    ),
    Case(
        "policy-is-a-folder",
        ["policy", "set", ".", "--reason", "x", "--by", RELEASE_MANAGER],
        2,
        "is not a file",
    ),
    Case(
        "policy-no-reason",
        ["policy", "set", "p.toml", "--reason", " ", "--by", RELEASE_MANAGER],
        2,
        "--reason is required",
        prepare=_write_bytes("p.toml", b"[approval]\nfour_eyes = false\n"),
    ),
    Case(
        "policy-for-another-model",
        ["policy", "set", "p.toml", "--model", "other", "--reason", "x", "--by", RELEASE_MANAGER],
        2,
        "not --model other",
        prepare=_write_bytes("p.toml", b"[approval]\nfour_eyes = false\n"),
    ),
    Case(
        "policy-set-by-non-owner",
        ["policy", "set", "p.toml", "--reason", "self-approval", "--by", ALICE],
        1,
        "alice is not one of the policy owners",
        prepare=_write_bytes("p.toml", b'[approval]\napprovers = ["alice"]\nfour_eyes = false\n'),
    ),
    Case(
        "model-unknown",
        ["status", "--model", "nonexistent"],
        2,
        "has no release policy in this store",
    ),
    # a write that takes the (file) lock first must refuse an unknown name before the lock:
    # no lock file appears, the store stays byte-identical
    Case(
        "approve-unknown-model",
        ["approve", "2", "--model", "typo", "--reason", "x", "--yes", "--by", BOB],
        2,
        "has no release policy in this store",
    ),
    Case(
        "reject-model-path",
        ["reject", "2", "--model", "a/b/c", "--reason", "x", "--by", BOB],
        2,
        "is not a model name",
    ),
    Case(
        "approve-model-traversal",
        ["approve", "2", "--model", "../../escaped", "--reason", "x", "--yes", "--by", BOB],
        2,
        "is not a model name",
    ),
]


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case, released: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`released`: v1 approved, v2 pending (proposed by carol); approvers alice and bob."""
    monkeypatch.chdir(tmp_path)
    if case.prepare:
        case.prepare(tmp_path)
    home = released.cli.home
    env: dict[str, str | None] = {**make_cli(home).env, "MAGENTA_RELEASE_USER": CAROL}
    for key, value in (case.env or {}).items():
        env[key] = (
            str(tmp_path / value)
            if key in {"MAGENTA_RELEASE_HOME", "MAGENTA_RELEASE_POLICY"} and value is not None
            else value
        )
    before = snapshot(home)
    result = invoke(case.args, env)
    assert result.exit_code == case.code, (result.stdout, result.stderr)
    # progress lines may come first; the error itself is exactly one line, and the last
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.splitlines()[-1] == errors[0]
    assert case.needle in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(home) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o.") or ".tmp" in p.name]
    assert os.environ.get("MLFLOW_TRACKING_URI") in (None, "")
