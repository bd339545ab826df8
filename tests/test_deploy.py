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

from magenta_release.core.policy import load_policy

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
    "google_billing_budget": "billingbudgets.googleapis.com",
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
        "google_artifact_registry_repository.pypi",
        "google_cloud_run_v2_job.db_upgrade",
    ):
        assert "var.region" in str(res[key].get("location", res[key].get("region"))), key
    for key in ("google_storage_bucket.artifacts", "google_storage_bucket.build_source"):
        assert "var.region" in str(res[key]["location"]), key
    for key in ("google_secret_manager_secret.mlflow", "google_secret_manager_secret.dagster_db"):
        replica = res[key]["replication"]
        assert "user_managed" in str(replica) and "var.region" in str(replica), key
    assert _s(res["google_compute_instance.dagster"]["zone"]) == "${var.zone}"
    zone = next(v['"zone"'] for v in variables if '"zone"' in v)
    assert _s(zone["default"]).startswith("europe-west3-")
    assert "europe-west3-" in str(zone["validation"])


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
    assert _s(access["for_each"]) == "${toset(var.iap_members)}"
    dagster = res["google_iap_web_cloud_run_service_iam_member.dagster"]
    assert _s(dagster["role"]) == "roles/iap.httpsResourceAccessor"
    assert "google_service_account.dagster.email" in str(dagster["member"])
    # People and the Dagster VM; no CI identity may reach the server.
    iap_grants = [k for k in res if k.startswith("google_iap_web_")]
    assert sorted(iap_grants) == [
        "google_iap_web_cloud_run_service_iam_member.dagster",
        "google_iap_web_cloud_run_service_iam_member.users",
    ]
    assert not [k for k in iap_grants if "ci" in str(res[k].get("member", ""))]
    public = [k for k, v in res.items() if "allUsers" in str(v) or "allAuthenticated" in str(v)]
    assert not public


def test_server_gets_the_iap_audience_jwks_and_ai_features_off() -> None:
    res = _resources()
    run = res["google_cloud_run_v2_service.mlflow"]
    env = _env(run)
    local = {k: _s(v) for k, v in _locals().items()}
    assert _s(run["name"]) == "${local.service_name}" and local["service_name"] == "mlflow"
    assert env["MAGENTA_RELEASE_IAP_HEADER_AUDIENCE"] == "${local.iap_audience}"
    assert "MAGENTA_RELEASE_IAP_AUDIENCE" not in env  # the old name, read by neither side
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
    # MLflow's webhook delivery refuses 169.254.169.254 and other non-public peers unless this is
    # true (CVE-2026-64849); pinned so an env change cannot reopen the metadata server.
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "false"
    # Two audiences with two variable names: the server's signed-header audience and the
    # clients' token audience; Terraform outputs them apart.
    outputs = {k: v for doc in _docs() for block in doc.get("output", []) for k, v in block.items()}
    assert _s(outputs['"iap_signed_header_audience"']["value"]) == "${local.iap_audience}"
    assert _s(outputs['"iap_client_audience"']["value"]) == "${var.iap_client_audience}"
    assert '"iap_audience"' not in outputs


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
    project_roles = {
        _s(v["role"]) for k, v in res.items() if k.startswith("google_project_iam_member")
    }
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
    # the [server] extra from the hashed lock, every pin with its SHA-256
    assert "--require-hashes" in dockerfile and "requirements-server.lock" in dockerfile
    requirements = [
        line
        for line in (ROOT / "requirements-server.lock").read_text().splitlines()
        if line and not line.startswith(("#", " "))
    ]
    assert requirements and all("==" in line and line.endswith("\\") for line in requirements)
    entry = (DEPLOY / "mlflow-server" / "entrypoint.sh").read_text()
    assert "--workers 1" in entry and "--app-name magenta-release-auth" in entry
    assert "magenta_release.server.auth:authenticate" in entry
    assert "--allowed-hosts" in entry


def test_production_policy_is_valid_and_allows_only_proxied_artifacts() -> None:
    policy = load_policy(DEPLOY / "release-policy.production.toml")
    assert policy.residency.allowed_artifact_locations == ("mlflow-artifacts:",)
    assert "127.0.0.1" not in policy.residency.allowed_tracking_hosts


def test_database_is_reached_with_a_password_and_audited_by_pgaudit() -> None:
    """The server's path to Cloud SQL is a password over the private IP, which IAM does not
    govern: no roles/cloudsql.client suggests otherwise, and pgAudit records the SQL that Admin
    Activity logs never see."""
    res = _resources()
    roles = {_s(v.get("role", "")) for v in res.values()}
    assert "roles/cloudsql.client" not in roles
    settings = _one(res["google_sql_database_instance.mlflow"]["settings"])
    assert _s(_one(settings["ip_configuration"])["ssl_mode"]) == "ENCRYPTED_ONLY"
    flags = {_s(f["name"]): _s(f["value"]) for f in settings["database_flags"]}
    assert flags["cloudsql.enable_pgaudit"] == "on"
    assert {"write", "ddl"} <= set(flags["pgaudit.log"].split(","))
    # Dagster has its own user and password (in Secret Manager), not the server's.
    assert _s(res["google_sql_user.dagster"]["name"]) == "dagster"
    assert "random_password.dagster_db" in str(res["google_sql_user.dagster"]["password"])


def test_connection_pools_fit_the_database_tier() -> None:
    """3 SQLAlchemy engines per server instance (tracking, registry, auth), each of pool +
    overflow connections, times max instances, must leave room on db-f1-micro (~25)."""
    res = _resources()
    run = res["google_cloud_run_v2_service.mlflow"]
    env = _env(run)
    pool = int(env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"])
    overflow = int(env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"])
    assert overflow >= 1  # MLflow passes max_overflow only when non-zero (else SQLAlchemy's 10)
    instances = int(_one(_one(run["template"])["scaling"])["max_instance_count"])
    assert instances * 3 * (pool + overflow) <= 25 - 5  # room for Dagster and an operator


def test_schema_upgrade_is_a_job_with_the_servers_identity_and_secret() -> None:
    job = _resources()["google_cloud_run_v2_job.db_upgrade"]
    task = _one(_one(job["template"])["template"])
    assert "google_service_account.mlflow_server.email" in str(task["service_account"])
    container = _one(task["containers"])
    assert "mlflow db upgrade" in " ".join(container["args"])
    assert "mlflow-backend-store-uri" in str(container["env"])
    assert "secret_key_ref" in str(container["env"])
    assert "vpc_access" in task


def test_iap_allows_programmatic_clients_by_name() -> None:
    settings = _resources()["google_iap_settings.mlflow"]
    assert _s(settings["name"]) == (
        "projects/${data.google_project.this.number}/iap_web/cloud_run-${var.region}"
        "/services/${local.service_name}"
    )
    oauth = _one(_one(settings["access_settings"])["oauth_settings"])
    assert _s(oauth["programmatic_clients"]) == "${var.iap_programmatic_clients}"


def test_data_access_audit_logs_are_on_for_what_the_docs_say_the_bucket_holds() -> None:
    config = _resources()["google_project_iam_audit_config.data_access"]
    audited = set(re.findall(r"[a-z]+\.googleapis\.com", str(_locals()["data_access_audited"])))
    assert {"iap.googleapis.com", "sqladmin.googleapis.com", "storage.googleapis.com"} <= audited
    assert "local.data_access_audited" in str(config["for_each"])
    types = {_s(c["log_type"]) for c in config["audit_log_config"]}
    assert types == {"DATA_READ", "DATA_WRITE"}


def test_a_budget_alerts_before_the_bill() -> None:
    budget = _resources()["google_billing_budget.mlflow"]
    assert "var.billing_account" in str(budget["billing_account"])
    assert "data.google_project.this.number" in str(budget["budget_filter"])
    thresholds = sorted(float(r["threshold_percent"]) for r in budget["threshold_rules"])
    assert thresholds[0] <= 0.5 and 1.0 in thresholds


def test_dagster_vm_is_private_in_terraform_and_reached_only_through_iap() -> None:
    res = _resources()
    vm = res["google_compute_instance.dagster"]
    nic = _one(vm["network_interface"])
    assert "access_config" not in nic  # no external IP
    assert "google_compute_subnetwork.mlflow.id" in str(nic["subnetwork"])
    assert "google_service_account.dagster.email" in str(vm["service_account"])
    assert vm["deletion_protection"] is True
    assert "cloud-init.yaml" in str(vm["metadata"])
    assert (TF.parent / "dagster" / "cloud-init.yaml").is_file()
    firewall = res["google_compute_firewall.iap_to_dagster"]
    assert [_s(r) for r in firewall["source_ranges"]] == ["35.235.240.0/20"]  # IAP only
    assert "dagster" in str(firewall["target_tags"])
    tunnel = res["google_iap_tunnel_instance_iam_member.operators"]
    assert _s(tunnel["role"]) == "roles/iap.tunnelResourceAccessor"
    assert "var.dagster_operators" in str(tunnel["for_each"])
    secret = res["google_secret_manager_secret_iam_member.dagster_reads_db_password"]
    assert "google_service_account.dagster.email" in str(secret["member"])
    # No NAT: packages come from a PyPI mirror in the region, images from Artifact Registry.
    assert not [k for k in res if k.startswith(("google_compute_router", "google_compute_nat"))]
    pypi = res["google_artifact_registry_repository.pypi"]
    assert _s(pypi["mode"]) == "REMOTE_REPOSITORY" and _s(pypi["format"]) == "PYTHON"
    assert "PYPI" in str(pypi["remote_repository_config"])


def test_cloud_build_config_builds_both_images_in_the_region() -> None:
    import yaml

    config = yaml.safe_load((DEPLOY / "cloudbuild" / "images.yaml").read_text())
    assert config["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    dockerfiles = [s["args"][s["args"].index("-f") + 1] for s in config["steps"]]
    assert dockerfiles == ["deploy/mlflow-server/Dockerfile", "deploy/dagster/Dockerfile"]
    for file in dockerfiles:
        assert (DEPLOY.parent / file).is_file()
    assert all(i.startswith("europe-west3-docker.pkg.dev/") for i in config["images"])


# ---- the local compose stack: can it build, and does it start in the mode it documents? ----
ROOT = DEPLOY.parent


def _ignore_patterns(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule, as far as these files use it: the last matching pattern
    wins, `!` re-includes, and a pattern that matches a folder excludes what is inside it."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        candidates = [relative] if negate else prefixes
        if any(regex.match(c) for c in candidates):
            result = not negate
    return result


def copy_problems(context: Path, dockerfile_text: str, patterns: list[str]) -> list[str]:
    """COPY sources that are missing from the build context or excluded by its ignore file."""
    problems = []
    for line in dockerfile_text.splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        for source in [w for w in words[1:-1] if not w.startswith("--")]:
            target = context / source
            if not target.exists():
                problems.append(f"{source}: not in the build context {context}")
                continue
            files = [target] if target.is_file() else sorted(target.rglob("*"))
            files = [f for f in files if f.is_file() and "__pycache__" not in f.parts]
            kept = [f for f in files if not ignored(str(f.relative_to(context)), patterns)]
            if not kept:
                problems.append(f"{source}: excluded by the ignore file")
    return problems


def _compose() -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return doc


def _builds() -> dict[str, tuple[Path, Path]]:
    """{service: (context, dockerfile)} for every service the stack builds."""
    out = {}
    for name, service in _compose()["services"].items():
        build = service.get("build")
        if build:
            context = (ROOT / build.get("context", ".")).resolve()
            out[name] = (context, context / build.get("dockerfile", "Dockerfile"))
    return out


def _ignore_file(context: Path, dockerfile: Path) -> Path:
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")  # BuildKit's rule
    return specific if specific.exists() else context / ".dockerignore"


@pytest.mark.parametrize("service", sorted(_builds()))
def test_compose_build_contexts_hold_every_file_the_dockerfiles_copy(service: str) -> None:
    context, dockerfile = _builds()[service]
    assert dockerfile.is_file(), dockerfile
    patterns = _ignore_patterns(_ignore_file(context, dockerfile))
    assert copy_problems(context, dockerfile.read_text(), patterns) == []


def test_the_old_compose_context_would_have_been_caught() -> None:
    """Positive control: the context `deploy/mlflow-server` (the bug) misses what the server's
    Dockerfile copies from the repository root, and an ignore file that drops dagster.yaml
    breaks the Dagster image."""
    server = (DEPLOY / "mlflow-server" / "Dockerfile").read_text()
    problems = copy_problems(DEPLOY / "mlflow-server", server, [])
    assert any("pyproject.toml" in p for p in problems)
    dagster = (DEPLOY / "dagster" / "Dockerfile").read_text()
    assert copy_problems(ROOT, dagster, ["dagster_home"])  # the old root .dockerignore rule
    assert not copy_problems(ROOT, dagster, ["dagster_home", "!dagster_home/dagster.yaml"])


def test_compose_runs_the_server_in_basic_mode_with_what_its_entrypoint_needs() -> None:
    env = _compose()["services"]["mlflow"]["environment"]
    assert env["MAGENTA_RELEASE_AUTH"] == "basic"  # the image defaults to iap, which exits 2 here
    entry = (DEPLOY / "mlflow-server" / "entrypoint.sh").read_text()
    required = set(re.findall(r'"\$\{(\w+):\?\}"', entry.split("if [", 1)[0]))
    assert required and required <= set(env), required - set(env)
    dagster = _compose()["services"]["dagster-webserver"]["build"]
    assert dagster["dockerfile"] == "deploy/dagster/Dockerfile"
