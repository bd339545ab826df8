# The MLflow server on Cloud Run with IAP enabled directly on the service (no load balancer):
# every request, on the run.app URL, carries a Google identity that IAP checked, and IAP passes it
# on as the signed header x-goog-iap-jwt-assertion. The magenta-release auth plugin in the image
# verifies that header (ES256, audience below, keys from the JWKS URL) and uses its e-mail as the
# MLflow user. Egress only into the VPC. min_instance_count = 0: no instance runs while nobody
# uses it, but the deployment's fixed floor is Cloud SQL (see docs/costs.md).
locals {
  service_name = "mlflow"
  # Google's signed-header audience for IAP on a Cloud Run service:
  # /projects/PROJECT_NUMBER/locations/REGION/services/SERVICE_NAME
  # (https://cloud.google.com/iap/docs/signed-headers-howto).
  iap_audience = "/projects/${data.google_project.this.number}/locations/${var.region}/services/${local.service_name}"
  iap_jwks_url = "https://www.gstatic.com/iap/verify/public_key-jwk"
  # The deterministic run.app host (SERVICE-PROJECT_NUMBER.REGION.run.app); the service cannot
  # read its own `uri` attribute, and --allowed-hosts needs the host before the first request.
  run_host = "${local.service_name}-${data.google_project.this.number}.${var.region}.run.app"
}

resource "google_service_account" "mlflow_server" {
  account_id   = "mlflow-server"
  display_name = "MLflow tracking server"
  depends_on   = [google_project_service.enabled]
}

# No roles/cloudsql.client: the server connects to Cloud SQL's private IP with a password, a
# path IAM does not govern (see database.tf), so the grant would only suggest a control that is
# not there.

resource "google_cloud_run_v2_service" "mlflow" {
  name                = local.service_name
  location            = var.region
  deletion_protection = true

  # IAP directly on the service (GA; https://cloud.google.com/run/docs/securing/identity-aware-proxy-cloud-run).
  # Ingress stays "all" because people reach the run.app URL from their laptops; IAP refuses
  # every request without an authorised Google identity before it reaches the container, and
  # Cloud Run's own IAM check then admits only IAP's service agent (iap_invokes below).
  iap_enabled          = true
  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = false

  template {
    service_account = google_service_account.mlflow_server.email
    timeout         = "300s"

    scaling {
      min_instance_count = 0
      max_instance_count = 2
    }

    vpc_access {
      egress = "ALL_TRAFFIC"
      network_interfaces {
        network    = google_compute_network.mlflow.id
        subnetwork = google_compute_subnetwork.mlflow.id
      }
    }

    containers {
      image = var.image

      resources {
        limits = {
          cpu    = "1"
          memory = "1Gi"
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      env {
        name  = "MLFLOW_ARTIFACTS_DESTINATION"
        value = "gs://${google_storage_bucket.artifacts.name}/artifacts"
      }
      env {
        name  = "MLFLOW_ALLOWED_HOSTS"
        value = local.run_host
      }
      env {
        name  = "MAGENTA_RELEASE_IAP_HEADER_AUDIENCE"
        value = local.iap_audience
      }
      env {
        name  = "MAGENTA_RELEASE_IAP_JWKS_URL"
        value = local.iap_jwks_url
      }
      # Also set in the image; repeated here so a different image cannot switch them back on.
      # AI Gateway and remote assistant could send experiment data to model providers outside
      # the EU; the job runner is an extra process and an attack surface (CVE-2026-0545).
      env {
        name  = "MLFLOW_ENABLE_AI_GATEWAY"
        value = "false"
      }
      env {
        name  = "MLFLOW_ENABLE_REMOTE_ASSISTANT"
        value = "false"
      }
      env {
        name  = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
        value = "false"
      }
      env {
        name  = "MLFLOW_DISABLE_TELEMETRY"
        value = "true"
      }
      # MLflow's webhook delivery refuses non-public addresses (169.254.169.254, the metadata
      # server that hands out this service account's tokens, among them) unless this is true;
      # pinned false so an env change cannot reopen CVE-2026-64849's target.
      env {
        name  = "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"
        value = "false"
      }
      # Connection budget: the server opens three SQLAlchemy engines (tracking, registry, auth).
      # SQLAlchemy's default pool (5 + 10 overflow) would allow 45 connections per instance and
      # 90 at max_instance_count = 2 against ~25 on db-f1-micro; 2 + 1 per engine is 9 per
      # instance, 18 in all (docs/architecture.md, "Past one machine"). MLflow passes
      # MAX_OVERFLOW only when it is non-zero, so 1 is the smallest value that takes effect.
      env {
        name  = "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"
        value = "2"
      }
      env {
        name  = "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"
        value = "1"
      }

      dynamic "env" {
        for_each = {
          MLFLOW_BACKEND_STORE_URI       = "mlflow-backend-store-uri"
          MLFLOW_AUTH_DATABASE_URI       = "mlflow-auth-database-uri"
          MLFLOW_AUTH_ADMIN_PASSWORD     = "mlflow-admin-password"
          MLFLOW_FLASK_SERVER_SECRET_KEY = "mlflow-flask-secret-key"
        }
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.mlflow[env.value].secret_id
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        http_get {
          path = "/health"
        }
        initial_delay_seconds = 5
        period_seconds        = 5
        failure_threshold     = 24
      }
      liveness_probe {
        http_get {
          path = "/health"
        }
        period_seconds = 30
      }
    }
  }

  # The first revision reads its secrets at start-up: the versions must exist and the service
  # account must already hold Secret Accessor, or the revision fails and the apply with it.
  depends_on = [
    google_secret_manager_secret_version.mlflow,
    google_secret_manager_secret_iam_member.server_reads,
    google_project_service.enabled,
  ]
}

# IAP's service agent is the only principal allowed to invoke the service: a request that did not
# pass IAP has no way past Cloud Run's IAM check.
resource "google_project_service_identity" "iap" {
  provider = google-beta
  service  = "iap.googleapis.com"
}

resource "google_cloud_run_v2_service_iam_member" "iap_invokes" {
  name     = google_cloud_run_v2_service.mlflow.name
  location = var.region
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_project_service_identity.iap.email}"
}

# Who gets through IAP: the team's people and groups (known at plan time, as for_each needs) and
# the Dagster VM's service account (created in dagster.tf, so its own resource). Nobody else,
# never allUsers, and no CI identity: nothing on a GitHub runner may reach the server.
resource "google_iap_web_cloud_run_service_iam_member" "users" {
  for_each               = toset(var.iap_members)
  project                = var.project_id
  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.mlflow.name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = each.value
}

resource "google_iap_web_cloud_run_service_iam_member" "dagster" {
  project                = var.project_id
  location               = var.region
  cloud_run_service_name = google_cloud_run_v2_service.mlflow.name
  role                   = "roles/iap.httpsResourceAccessor"
  member                 = "serviceAccount:${google_service_account.dagster.email}"
}

# Programmatic access (CLI, Dagster): with IAP's Google-managed OAuth client it is blocked until
# the OAuth client ids that issue the callers' ID tokens are allowlisted
# (https://cloud.google.com/iap/docs/authentication-howto). These are the *client* audience;
# the server checks a different one (local.iap_audience, the signed header's `aud`).
resource "google_iap_settings" "mlflow" {
  name = "projects/${data.google_project.this.number}/iap_web/cloud_run-${var.region}/services/${local.service_name}"
  access_settings {
    oauth_settings {
      programmatic_clients = var.iap_programmatic_clients
    }
  }
  depends_on = [google_cloud_run_v2_service.mlflow]
}

# Schema upgrades: MLflow refuses to start on an out-of-date schema and never migrates a
# production database by itself. Before a new image takes traffic: back up, update this job's
# image, `gcloud run jobs execute mlflow-db-upgrade --region europe-west3 --wait`, then deploy
# the service (docs/rollout.md, "Operating"). Same image, service account, secrets and network.
resource "google_cloud_run_v2_job" "db_upgrade" {
  name                = "mlflow-db-upgrade"
  location            = var.region
  deletion_protection = true

  template {
    task_count = 1
    template {
      service_account = google_service_account.mlflow_server.email
      max_retries     = 0
      timeout         = "1800s"

      vpc_access {
        egress = "ALL_TRAFFIC"
        network_interfaces {
          network    = google_compute_network.mlflow.id
          subnetwork = google_compute_subnetwork.mlflow.id
        }
      }

      containers {
        image   = var.image
        command = ["/bin/sh", "-c"]
        args    = ["exec mlflow db upgrade \"$MLFLOW_BACKEND_STORE_URI\""]
        env {
          name = "MLFLOW_BACKEND_STORE_URI"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.mlflow["mlflow-backend-store-uri"].secret_id
              version = "latest"
            }
          }
        }
        env {
          name  = "MLFLOW_DISABLE_TELEMETRY"
          value = "true"
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_version.mlflow,
    google_secret_manager_secret_iam_member.server_reads,
    google_project_service.enabled,
  ]
}
