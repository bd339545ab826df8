"""deploy/: Terraform formatted and asserting residency, CMEK and no public access; the server
image pinned, non-root, health-checked, telemetry off."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from magenta_release.policy import load_policy

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TF = DEPLOY / "terraform"


def _resources() -> dict[str, dict[str, Any]]:
    """{"type.name": body} over every .tf file."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(TF.glob("*.tf")):
        doc = hcl2.loads(path.read_text())
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[f"{_s(rtype)}.{_s(name)}"] = body
    return found


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _s(value: Any) -> str:
    return str(value).strip('"')


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not installed")
def test_terraform_is_formatted() -> None:
    done = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(TF)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_region_is_frankfurt_and_enforced() -> None:
    variables = hcl2.loads((TF / "variables.tf").read_text())["variable"]
    region = next(v['"region"'] for v in variables if '"region"' in v)
    assert _s(region["default"]) == "europe-west3"
    assert "europe-west3" in str(region["validation"])
    res = _resources()
    policy = res["google_org_policy_policy.resource_locations"]
    assert "gcp.resourceLocations" in _s(policy["name"])
    assert "in:europe-west3-locations" in str(policy["spec"])
    for key in (
        "google_cloud_run_v2_service.mlflow",
        "google_sql_database_instance.mlflow",
        "google_kms_key_ring.mlflow",
    ):
        assert "var.region" in str(res[key].get("location", res[key].get("region"))), key
    assert "var.region" in str(res["google_storage_bucket.artifacts"]["location"])
    for replica in [res["google_secret_manager_secret.mlflow"]["replication"]]:
        assert "user_managed" in str(replica) and "var.region" in str(replica)


def test_bucket_is_private_versioned_and_cmek() -> None:
    bucket = _resources()["google_storage_bucket.artifacts"]
    assert bucket["uniform_bucket_level_access"] is True
    assert _s(bucket["public_access_prevention"]) == "enforced"
    assert _one(bucket["versioning"])["enabled"] is True
    assert "google_kms_crypto_key.artifacts" in str(bucket["encryption"])
    assert bucket["lifecycle_rule"]


def test_database_is_private_small_and_backed_up() -> None:
    db = _resources()["google_sql_database_instance.mlflow"]
    settings = _one(db["settings"])
    assert _s(settings["tier"]) == "db-f1-micro"
    ip = _one(settings["ip_configuration"])
    assert ip["ipv4_enabled"] is False
    backup = _one(settings["backup_configuration"])
    assert backup["enabled"] is True and backup["point_in_time_recovery_enabled"] is True
    assert "google_kms_crypto_key.database" in str(db["encryption_key_name"])


def test_cloud_run_is_behind_iap_and_scales_to_zero() -> None:
    res = _resources()
    run = res["google_cloud_run_v2_service.mlflow"]
    assert _s(run["ingress"]) == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    template = _one(run["template"])
    assert _one(template["scaling"])["min_instance_count"] == 0
    assert "secret_key_ref" in str(template["containers"])  # secrets not as plain env
    plain = [e for e in _one(template["containers"]).get("env", []) if "value" in e]
    assert not [e for e in plain if "PASSWORD" in str(e) or "URI" in str(e["name"])]
    assert _one(res["google_compute_backend_service.mlflow"]["iap"])["enabled"] is True
    invoker = res["google_cloud_run_v2_service_iam_member.iap_invokes"]
    assert "allUsers" not in str(invoker) and "iap" in str(invoker["member"])
    assert not [k for k, v in res.items() if "allUsers" in str(v) or "allAuthenticated" in str(v)]


def test_server_image_is_pinned_non_root_and_quiet() -> None:
    dockerfile = (DEPLOY / "mlflow-server" / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile
    for switch in (
        "MLFLOW_DISABLE_TELEMETRY=true",
        "DO_NOT_TRACK=true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
        "MLFLOW_ENABLE_AI_GATEWAY=false",
        "MLFLOW_ENABLE_REMOTE_ASSISTANT=false",
    ):
        assert switch in dockerfile, switch
    requirements = [
        line
        for line in (DEPLOY / "mlflow-server" / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all("==" in line for line in requirements)
    entry = (DEPLOY / "mlflow-server" / "entrypoint.sh").read_text()
    assert "--workers 1" in entry and "--app-name basic-auth" in entry
    assert "--allowed-hosts" in entry and "default_permission = READ" in entry


def test_production_policy_is_valid_and_allows_only_proxied_artifacts() -> None:
    policy = load_policy(DEPLOY / "release-policy.production.toml")
    assert policy.residency.allowed_artifact_locations == ("mlflow-artifacts:",)
    assert "127.0.0.1" not in policy.residency.allowed_tracking_hosts
