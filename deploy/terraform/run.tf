# The MLflow server on Cloud Run: scales to zero, reachable only through the load balancer
# (IAP), egress only into the VPC.
resource "google_service_account" "mlflow_server" {
  account_id   = "mlflow-server"
  display_name = "MLflow tracking server"
}

resource "google_project_iam_member" "server_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.mlflow_server.email}"
}

resource "google_cloud_run_v2_service" "mlflow" {
  name                = "mlflow"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  deletion_protection = true

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
        value = var.domain
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

  depends_on = [google_secret_manager_secret_version.mlflow]
}

# Only the load balancer's IAP service agent may invoke the service.
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
