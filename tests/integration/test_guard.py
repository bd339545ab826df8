"""The guard's rules, pure, on an in-memory store (`Names`): which requests MLflow's readers
would read differently (`server.requests`), and which writes touch governed state
(`server.guard.decide`). The attack tests (test_attacks.py) run the same rules inside a real
`mlflow server`; these pin each rule's edges."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from magenta_release.server.guard import UNREADABLE, Refused, Target, artifact_experiment, decide
from magenta_release.server.requests import Shape, problem

MODEL = "churn-classifier"
POLICIES, RELEASES = "11", "12"  # the ids of magenta-release-policies and -releases


@dataclass
class Memory:
    governed: set[str] = field(default_factory=lambda: {MODEL})
    runs: dict[str, str] = field(
        default_factory=lambda: {"policy-run": POLICIES, "copy-run": RELEASES, "team-run": "3"}
    )
    logged: dict[str, str] = field(default_factory=lambda: {"m-released": RELEASES, "m-team": "3"})

    def model_governed(self, name: str) -> bool:
        return name in self.governed

    def reserved_experiment_ids(self) -> set[str]:
        return {POLICIES, RELEASES}

    def experiment_of_run(self, run_id: str) -> str | None:
        return self.runs.get(run_id)

    def experiment_of_logged_model(self, model_id: str) -> str | None:
        return self.logged.get(model_id)

    def governed_experiments(self) -> dict[str, str]:
        return {MODEL: "3"}


def shape(
    method: str = "POST",
    path: str = "/api/2.0/mlflow/registered-models/set-tag",
    query: bytes = b"",
    content_type: str | None = "application/json",
    body_is_object: bool = True,
) -> Shape:
    return Shape(method, path, query, content_type, body_is_object)


# ---- the request shape -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_shape", "why"),
    [
        (shape("DELETE", content_type="text/plain"), "Content-Type"),
        (shape("DELETE", content_type="text/plain;charset=UTF-8"), "Content-Type"),
        (shape("DELETE", content_type=None), "Content-Type"),
        (shape(content_type="application/json-seq"), "Content-Type"),
        (shape(content_type="Application/JSON"), "Content-Type"),  # MLflow compares exactly
        (shape(content_type=" application/json"), "Content-Type"),
        (shape(body_is_object=False), "not a JSON object"),  # double-encoded, a list, empty
        (shape(query=b"name=churn-classifier-audit-log"), "query string"),
        (shape("DELETE", query=b"name=x"), "query string"),
        (
            shape("PATCH", "/ajax-api/2.0/mlflow/model-versions/update", body_is_object=False),
            "JSON",
        ),
        (shape(path="/api/2.0/preview/mlflow/registered-models/set-tag", query=b"a=1"), "query"),
    ],
)
def test_what_mlflow_reads_differently_is_refused(request_shape: Shape, why: str) -> None:
    found = problem(request_shape)
    assert found is not None and why in found, found


@pytest.mark.parametrize(
    "request_shape",
    [
        shape(),
        shape(content_type="application/json; charset=utf-8"),
        shape(content_type="application/json;charset=UTF-16"),
        shape("DELETE", "/ajax-api/2.0/mlflow/registered-models/delete"),
        # reads and routes that are not JSON by design keep their own shape
        shape("GET", query=b"name=x", content_type=None, body_is_object=False),
        shape(
            "PUT", "/api/2.0/mlflow-artifacts/artifacts/3/r/artifacts/m.skops", content_type=None
        ),
        shape("POST", "/ajax-api/2.0/mlflow/upload-artifact", query=b"run_uuid=r&path=x"),
        shape("POST", "/api/2.0/mlflow/users/create-ui", content_type="multipart/form-data"),
        shape("POST", "/graphql", content_type="text/plain", body_is_object=False),
    ],
)
def test_the_one_shape_every_reader_agrees_on_passes(request_shape: Shape) -> None:
    assert problem(request_shape) is None


# ---- governed state --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        MODEL,
        f"{MODEL}-audit-log",
        f"{MODEL}-release-lock",
        f"{MODEL}-release-lock-break-1764000000000",
        "decoy-audit-log",  # nobody creates a log, governed or not
        "Churn-Classifier-AUDIT-LOG",
    ],
)
def test_every_write_naming_a_governed_or_reserved_model_is_refused(name: str) -> None:
    with pytest.raises(Refused):
        decide(Memory(), Target(models=(name,)))


def test_a_rename_to_or_from_a_governed_name_is_refused() -> None:
    with pytest.raises(Refused, match="governed"):
        decide(Memory(), Target(models=("mine", MODEL)))
    with pytest.raises(Refused, match="uses for itself"):
        decide(Memory(), Target(models=("mine", "x-audit-log")))


def test_other_models_experiments_and_runs_are_free() -> None:
    """Positive control: the rules refuse only governed state."""
    names = Memory()
    decide(names, Target(models=("team-model", "other-scratch")))
    decide(names, Target(experiment_names=("churn", "churn-health")))
    decide(names, Target(experiments=("3",), runs=("team-run", "unknown-run")))
    decide(names, Target(logged_models=("m-team",), artifact_paths=("3/team-run/artifacts/m",)))


@pytest.mark.parametrize(
    "target",
    [
        Target(experiment_names=("magenta-release-policies",)),
        Target(experiment_names=("Magenta-Release-Releases ",)),
        Target(experiments=(POLICIES,)),
        Target(runs=("policy-run",)),
        Target(runs=("copy-run",)),
        Target(logged_models=("m-released",)),
        Target(artifact_paths=(f"{RELEASES}/copy-run/artifacts/model/model.skops",)),
        Target(artifact_paths=(f"./{POLICIES}/policy-run/artifacts/release-policy.toml",)),
        Target(artifact_paths=(f"3/../{RELEASES}/copy-run/artifacts/model",)),
        Target(artifact_paths=(f"%2e%2e/{RELEASES}/x",)),
        Target(unreadable="Invalid boolean value"),
    ],
)
def test_stored_policies_and_released_files_are_written_by_nobody(target: Target) -> None:
    with pytest.raises(Refused):
        decide(Memory(), target)


def test_artifact_paths_are_read_as_mlflow_canonicalises_them() -> None:
    assert artifact_experiment("12/run/artifacts/model") == "12"
    assert artifact_experiment("./12//run/artifacts") == "12"
    assert artifact_experiment("../12/x") == UNREADABLE  # refused, never guessed
    assert artifact_experiment("./") is None
