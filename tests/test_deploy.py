"""deploy/: what the Terraform and the server image promise, read from the files themselves.

No Google provider can be installed here (only PyPI, npm and Debian are reachable), so
`terraform validate` runs only where `MAGENTA_RELEASE_TERRAFORM_VALIDATE=1` says the providers
can be fetched; everywhere else these tests parse the HCL with python-hcl2 and assert the
resources, attributes and references that the docs rely on. They check structure, not that
Google's API accepts it: docs/architecture.md says exactly what is and is not covered.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from magenta_release.policy import load_policy

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TF = DEPLOY / "terraform"
BOOTSTRAP = TF / "bootstrap"

# The resources an external HTTPS load balancer needs; IAP now sits on the Cloud Run service.
LOAD_BALANCER_TYPES = {
    "google_compute_global_forwarding_rule",
    "google_compute_target_https_proxy",
    "google_compute_url_map",
    "google_compute_region_network_endpoint_group",
    "google_compute_backend_service",
    "google_compute_managed_ssl_certificate",
    "google_compute_ssl_policy",
    "google_iap_web_backend_service_iam_member",
}

# Which API each resource type needs (google_project_service must enable every one in use).
API_OF_PREFIX = {
    "google_artifact_registry_": "artifactregistry.googleapis.com",
    "google_cloud_run_v2_": "run.googleapis.com",
    "google_compute_": "compute.googleapis.com",
    "google_iam_workload_identity_pool": "iam.googleapis.com",
    "google_iap_": "iap.googleapis.com",
    "google_kms_": "cloudkms.googleapis.com",
    "google_logging_": "logging.googleapis.com",
    "google_org_policy_": "orgpolicy.googleapis.com",
    "google_project_iam_": "cloudresourcemanager.googleapis.com",
    "google_secret_manager_": "secretmanager.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_service_networking_": "servicenetworking.googleapis.com",
    "google_sql_": "sqladmin.googleapis.com",
    "google_storage_": "storage.googleapis.com",
}


def _clean(value: Any) -> Any:
    """hcl2 output without the comments it keeps (a comment must not satisfy an assertion)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "__comments__"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _docs(folder: Path = TF) -> list[dict[str, Any]]:
    return [_clean(hcl2.loads(p.read_text())) for p in sorted(folder.glob("*.tf"))]


def _resources(folder: Path = TF) -> dict[str, dict[str, Any]]:
    """{"type.name": body} over every .tf file of one configuration."""
    found: dict[str, dict[str, Any]] = {}
    for doc in _docs(folder):
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[f"{_s(rtype)}.{_s(name)}"] = body
    return found


def _locals() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in _docs():
        for block in doc.get("locals", []):
            out.update(block)
    return out


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _s(value: Any) -> str:
    return str(value).strip('"')


def _env(run: dict[str, Any]) -> dict[str, str]:
    container = _one(_one(run["template"])["containers"])
    return {_s(e["name"]): _s(e["value"]) for e in container.get("env", []) if "value" in e}


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not installed")
def test_terraform_is_formatted() -> None:
    done = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(TF)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(
    shutil.which("terraform") is None
    or os.environ.get("MAGENTA_RELEASE_TERRAFORM_VALIDATE") != "1",
    reason="needs terraform and the hashicorp/google providers (registry.terraform.io)",
)
@pytest.mark.parametrize("folder", [TF, BOOTSTRAP], ids=["main", "bootstrap"])
def test_terraform_validates(folder: Path, tmp_path: Path) -> None:
    work = tmp_path / folder.name
    shutil.copytree(folder, work, ignore=shutil.ignore_patterns(".terraform*", "bootstrap"))
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    for args in (["init", "-backend=false", "-input=false"], ["validate"]):
        done = subprocess.run(
            ["terraform", *args], cwd=work, capture_output=True, text=True, timeout=600, env=env
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_region_is_frankfurt_and_enforced() -> None:
    variables = _clean(hcl2.loads((TF / "variables.tf").read_text()))["variable"]
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
        "google_logging_project_bucket_config.eu",
        "google_artifact_registry_repository.images",
    ):
        assert "var.region" in str(res[key].get("location", res[key].get("region"))), key
    for key in ("google_storage_bucket.artifacts", "google_storage_bucket.build_source"):
        assert "var.region" in str(res[key]["location"]), key
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
    res = _resources()
    db = res["google_sql_database_instance.mlflow"]
    settings = _one(db["settings"])
    assert _s(settings["tier"]) == "db-f1-micro"
    ip = _one(settings["ip_configuration"])
    assert ip["ipv4_enabled"] is False
    backup = _one(settings["backup_configuration"])
    assert backup["enabled"] is True and backup["point_in_time_recovery_enabled"] is True
    assert "google_kms_crypto_key.database" in str(db["encryption_key_name"])
    assert {"google_sql_database.mlflow", "google_sql_database.dagster"} <= res.keys()


def test_deletion_protection_is_kept() -> None:
    res = _resources()
    assert res["google_sql_database_instance.mlflow"]["deletion_protection"] is True
    assert res["google_cloud_run_v2_service.mlflow"]["deletion_protection"] is True
    buckets = {k: v for k, v in res.items() if k.startswith("google_storage_bucket.")}
    assert buckets and all(b["force_destroy"] is False for b in buckets.values())
    artifacts = res["google_storage_bucket.artifacts"]
    assert _one(artifacts["lifecycle"])["prevent_destroy"] is True
    for key in ("google_kms_crypto_key.artifacts", "google_kms_crypto_key.database"):
        assert _one(res[key]["lifecycle"])["prevent_destroy"] is True, key


def test_there_is_no_load_balancer() -> None:
    res = _resources()
    types = {k.split(".")[0] for k in res}
    assert not types & LOAD_BALANCER_TYPES
    # The one global address left reserves the private range for Cloud SQL peering.
    addresses = {k: v for k, v in res.items() if k.startswith("google_compute_global_address.")}
    assert list(addresses) == ["google_compute_global_address.sql_peering"]
    assert _s(addresses["google_compute_global_address.sql_peering"]["purpose"]) == "VPC_PEERING"
    outputs = " ".join(str(doc.get("output", "")) for doc in _docs())
    assert "load_balancer" not in outputs and "var.domain" not in outputs


def test_iap_is_on_the_cloud_run_service_and_only_iap_invokes_it() -> None:
    res = _resources()
    run = res["google_cloud_run_v2_service.mlflow"]
    assert run["iap_enabled"] is True
    assert run.get("invoker_iam_disabled", False) is False
    invoker = res["google_cloud_run_v2_service_iam_member.iap_invokes"]
    assert _s(invoker["role"]) == "roles/run.invoker"
    assert "google_project_service_identity.iap.email" in str(invoker["member"])
    access = res["google_iap_web_cloud_run_service_iam_member.users"]
    assert _s(access["role"]) == "roles/iap.httpsResourceAccessor"
    assert "google_cloud_run_v2_service.mlflow.name" in str(access["cloud_run_service_name"])
    for grantee in ("var.iap_members", "var.pipeline_service_account"):
        assert grantee in str(access["for_each"]), grantee
    ci = res["google_iap_web_cloud_run_service_iam_member.ci_build"]
    assert _s(ci["role"]) == "roles/iap.httpsResourceAccessor"
    assert "google_service_account.ci_build.email" in str(ci["member"])
    iap_grants = [k for k in res if k.startswith("google_iap_")]
    assert sorted(iap_grants) == [
        "google_iap_web_cloud_run_service_iam_member.ci_build",
        "google_iap_web_cloud_run_service_iam_member.users",
    ]
    public = [k for k, v in res.items() if "allUsers" in str(v) or "allAuthenticated" in str(v)]
    assert not public


def test_server_gets_the_iap_audience_jwks_and_ai_features_off() -> None:
    res = _resources()
    run = res["google_cloud_run_v2_service.mlflow"]
    env = _env(run)
    local = {k: _s(v) for k, v in _locals().items()}
    assert _s(run["name"]) == "${local.service_name}" and local["service_name"] == "mlflow"
    assert env["MAGENTA_RELEASE_IAP_AUDIENCE"] == "${local.iap_audience}"
    # Google's format for IAP on Cloud Run, with the project *number*.
    assert local["iap_audience"] == (
        "/projects/${data.google_project.this.number}/locations/${var.region}"
        "/services/${local.service_name}"
    )
    assert env["MAGENTA_RELEASE_IAP_JWKS_URL"] == "${local.iap_jwks_url}"
    assert local["iap_jwks_url"] == "https://www.gstatic.com/iap/verify/public_key-jwk"
    for name in (
        "MLFLOW_ENABLE_AI_GATEWAY",
        "MLFLOW_ENABLE_REMOTE_ASSISTANT",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    ):
        assert env[name] == "false", name
    assert env["MLFLOW_ALLOWED_HOSTS"] == "${local.run_host}"
    assert local["run_host"].endswith(".run.app")


def test_secrets_are_references_and_cloud_run_waits_for_its_accessor_grant() -> None:
    res = _resources()
    run = res["google_cloud_run_v2_service.mlflow"]
    container = _one(_one(run["template"])["containers"])
    assert "secret_key_ref" in str(container)
    plain = [e for e in container.get("env", []) if "value" in e]
    assert not [e for e in plain if "PASSWORD" in str(e) or "URI" in str(e["name"])]
    waits_for = " ".join(run["depends_on"])
    assert "google_secret_manager_secret_iam_member.server_reads" in waits_for
    assert "google_secret_manager_secret_version.mlflow" in waits_for
    grant = res["google_secret_manager_secret_iam_member.server_reads"]
    assert _s(grant["role"]) == "roles/secretmanager.secretAccessor"
    assert "mlflow_server.email" in str(grant["member"])


def test_default_log_sink_routes_to_a_europe_west3_bucket() -> None:
    res = _resources()
    bucket = res["google_logging_project_bucket_config.eu"]
    assert "var.region" in str(bucket["location"])
    sink = res["google_logging_project_sink.default"]
    assert _s(sink["name"]) == "_Default"
    assert "google_logging_project_bucket_config.eu.id" in _s(sink["destination"])
    imports = [i for doc in _docs() for i in doc.get("import", [])]
    assert any(
        "google_logging_project_sink.default" in str(i["to"]) and "sinks/_Default" in str(i["id"])
        for i in imports
    )


def test_every_api_in_use_is_enabled() -> None:
    res = _resources()
    services = _locals()["services"]
    enabled = set(re.findall(r"[a-z]+\.googleapis\.com", str(services)))
    assert "for_each" in res["google_project_service.enabled"]
    used = set()
    for key in res:
        rtype = key.split(".")[0]
        used |= {api for prefix, api in API_OF_PREFIX.items() if rtype.startswith(prefix)}
    assert used, "no resource matched the API map"
    assert used <= enabled, used - enabled
    # Cloud Build and the token exchange are used from CI, not by a resource of their own.
    assert {"cloudbuild.googleapis.com", "sts.googleapis.com", "iamcredentials.googleapis.com"} <= (
        enabled
    )


def test_state_is_remote_in_a_cmek_bucket_in_frankfurt() -> None:
    terraform = _one(next(d for d in _docs() if "terraform" in d)["terraform"])
    backend = _one(terraform["backend"])
    assert '"gcs"' in backend and "bucket" not in backend['"gcs"']  # passed at init time
    res = _resources(BOOTSTRAP)
    state = res["google_storage_bucket.tfstate"]
    assert "var.region" in str(state["location"])
    assert "google_kms_crypto_key.tfstate" in str(state["encryption"])
    assert _one(state["versioning"])["enabled"] is True
    assert _s(state["public_access_prevention"]) == "enforced"
    assert state["force_destroy"] is False
    assert _one(state["lifecycle"])["prevent_destroy"] is True
    assert "var.region" in str(res["google_kms_key_ring.tfstate"]["location"])
    variables = [v for d in _docs(BOOTSTRAP) for v in d.get("variable", [])]
    region = next(v['"region"'] for v in variables if '"region"' in v)
    assert "europe-west3" in str(region["validation"])


def test_ci_federation_is_limited_to_one_repository_and_to_submitting_builds() -> None:
    res = _resources()
    provider = res["google_iam_workload_identity_pool_provider.github"]
    condition = _s(provider["attribute_condition"])
    assert "assertion.repository ==" in condition and "var.github_repository" in condition
    assert "refs/heads/main" in condition
    assert _s(_one(provider["oidc"])["issuer_uri"]) == "https://token.actions.githubusercontent.com"
    binding = res["google_service_account_iam_member.github_is_ci"]
    assert "attribute.repository/${var.github_repository}" in str(binding["member"])
    roles_of_ci = {
        _s(v["role"])
        for k, v in res.items()
        if "google_service_account.ci.email" in str(v.get("member", ""))
    }
    assert roles_of_ci == {
        "roles/cloudbuild.builds.editor",
        "roles/iam.serviceAccountUser",
        "roles/storage.objectUser",
    }
    project_roles = {_s(v["role"]) for k, v in res.items() if k.startswith("google_project_iam")}
    assert not project_roles & {"roles/owner", "roles/editor", "roles/run.admin"}


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
    assert "--workers 1" in entry and "--app-name magenta-release-auth" in entry
    assert "magenta_release.server.auth:authenticate" in entry
    assert "--allowed-hosts" in entry


def test_production_policy_is_valid_and_allows_only_proxied_artifacts() -> None:
    policy = load_policy(DEPLOY / "release-policy.production.toml")
    assert policy.residency.allowed_artifact_locations == ("mlflow-artifacts:",)
    assert "127.0.0.1" not in policy.residency.allowed_tracking_hosts
