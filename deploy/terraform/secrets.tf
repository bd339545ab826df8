# Secrets live in Secret Manager, replicated only in the region, and reach the container as
# secret-backed environment variables (never plain env values in the service definition).
locals {
  db_host = google_sql_database_instance.mlflow.private_ip_address
  secrets = {
    "mlflow-backend-store-uri" = "postgresql+psycopg://mlflow:${random_password.db.result}@${local.db_host}/mlflow"
    "mlflow-auth-database-uri" = "postgresql+psycopg://mlflow:${random_password.db.result}@${local.db_host}/mlflow_auth"
    "mlflow-admin-password"    = random_password.admin.result
    "mlflow-flask-secret-key"  = random_password.flask.result
  }
}

resource "random_password" "admin" {
  length = 32
}

resource "random_password" "flask" {
  length = 64
}

resource "google_secret_manager_secret" "mlflow" {
  for_each   = local.secrets
  secret_id  = each.key
  depends_on = [google_project_service.enabled]

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "mlflow" {
  for_each    = local.secrets
  secret      = google_secret_manager_secret.mlflow[each.key].id
  secret_data = each.value
}

resource "google_secret_manager_secret_iam_member" "server_reads" {
  for_each  = local.secrets
  secret_id = google_secret_manager_secret.mlflow[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.mlflow_server.email}"
}
