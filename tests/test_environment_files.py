"""The team's environment files keep their rules: the Codespace sets the project up and forwards
the UIs; the compose stack pins its images, listens on loopback only and takes every secret from
a git-ignored `.env` that `.env.example` documents."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
REQUIRED = re.compile(
    r"\$\{(\w+):\?[^}]+\}"
)  # ${VAR:?message}: compose refuses to start without it


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_devcontainer_sets_up_the_project_and_forwards_the_uis() -> None:
    # devcontainer.json allows comments; ours has none, so plain JSON must parse it
    doc = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    image = doc["image"]
    assert re.search(r":[\w.-]*3\.11[\w.-]*$", image), f"not a pinned Python 3.11 image: {image}"
    assert "latest" not in image
    assert doc["postCreateCommand"] == "make setup"
    assert {5000, 3000} <= set(doc["forwardPorts"])
    assert doc["containerEnv"]["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_compose_has_the_server_stack() -> None:
    services = _services()
    # built from the repository root: the Dockerfile copies the package and pyproject.toml
    assert services["mlflow"]["build"]["context"] == "."
    assert services["mlflow"]["build"]["dockerfile"] == "deploy/mlflow-server/Dockerfile"
    commands = {" ".join(s.get("command", [])) for s in services.values()}
    assert any(c.startswith("dagster-webserver") and "-m dagster_assets" in c for c in commands)
    assert any(c.startswith("dagster-daemon run") and "-m dagster_assets" in c for c in commands)
    assert any(s["image"].startswith("postgres:15") for s in services.values())


@pytest.mark.parametrize("name", sorted(_services()))
def test_every_image_is_pinned_by_version(name: str) -> None:
    image = _services()[name]["image"]
    assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+[\w.-]*", image), f"{name}: {image} has no version"
    assert not image.endswith(":latest")
    inline = _services()[name].get("build", {}).get("dockerfile_inline", "")
    for base in re.findall(r"^FROM\s+(\S+)", inline, flags=re.M):
        assert re.search(r":\d+(\.\d+)+", base), f"{name}: base image {base} has no version"
    if name == "mlflow":
        dockerfile = (ROOT / "deploy" / "mlflow-server" / "Dockerfile").read_text()
        assert re.search(r"^FROM python:\d+\.\d+\.\d+", dockerfile, flags=re.M)


@pytest.mark.parametrize("name", sorted(_services()))
def test_every_published_port_is_loopback_only(name: str) -> None:
    for port in _services()[name].get("ports", []):
        text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}"
        assert str(text).startswith("127.0.0.1:"), f"{name}: port {port} listens beyond loopback"


def test_no_password_or_secret_is_written_into_compose() -> None:
    for name, service in _services().items():
        for key, value in _env(service).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEY", key):
                assert REQUIRED.fullmatch(value), f"{name}: {key} must be ${{{key}:?...}}"
            # a URL with credentials may only carry a required variable as its password
            for password in re.findall(r"://[^:/@]+:([^@]+)@", value):
                assert REQUIRED.fullmatch(password), f"{name}: {key} has a literal password"
    # and no `${VAR:-default}` or `${VAR-default}` fallbacks that would supply one silently
    assert not re.search(r"\$\{\w+:?-", COMPOSE.read_text())


def test_env_is_git_ignored_and_env_example_names_every_required_variable() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0, ".env is not git-ignored"
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(\w+)=", example, flags=re.M))
    required = set(REQUIRED.findall(COMPOSE.read_text()))
    assert required and required <= documented, required - documented
    # the example carries names, never values
    assert re.findall(r"^\w+=(.+)$", example, flags=re.M) == []
