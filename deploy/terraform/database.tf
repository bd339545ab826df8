# Tracking + registry + auth database: smallest tier, private IP only, backups with PITR.
# Who reaches it: anything in the VPC that knows a database password. The server logs in as
# `mlflow` with a password from Secret Manager over the private IP; that path does not go through
# IAM (roles/cloudsql.client governs the Cloud SQL connectors and Auth Proxy, which nothing here
# uses), so no IAM role is granted for it. TLS is required (ssl_mode).
resource "google_sql_database_instance" "mlflow" {
  name                = "mlflow"
  region              = var.region
  database_version    = "POSTGRES_15"
  deletion_protection = true
  encryption_key_name = google_kms_crypto_key.database.id

  settings {
    tier              = "db-f1-micro"
    edition           = "ENTERPRISE"
    availability_type = "ZONAL"
    disk_type         = "PD_SSD"
    disk_size         = 10
    disk_autoresize   = true

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.mlflow.id
      enable_private_path_for_google_cloud_services = true
      ssl_mode                                      = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      location                       = var.region
      point_in_time_recovery_enabled = true
      start_time                     = "02:00"
      backup_retention_settings {
        retained_backups = 14
      }
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "1000"
    }
    # pgAudit: every write and DDL statement, by whichever database user, lands in Cloud Logging
    # as a Data Access audit log (audit.tf switches those on for Cloud SQL). Admin Activity logs
    # record instance changes, never SQL; this is what shows a hand-written UPDATE of the audit
    # log's tags. Run `CREATE EXTENSION pgaudit;` once in each database (docs/rollout.md).
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "write,ddl,role"
    }
  }

  depends_on = [google_service_networking_connection.sql,
  google_kms_crypto_key_iam_member.sql_uses_database_key]
}

resource "google_sql_database" "mlflow" {
  name     = "mlflow"
  instance = google_sql_database_instance.mlflow.name
}

resource "google_sql_database" "mlflow_auth" {
  name     = "mlflow_auth"
  instance = google_sql_database_instance.mlflow.name
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "google_sql_user" "mlflow" {
  name     = "mlflow"
  instance = google_sql_database_instance.mlflow.name
  password = random_password.db.result
}

# Dagster's run, event-log and schedule storage (dagster-postgres) on the same instance, in its
# own database: one instance to back up and restore (docs/architecture.md, "Dagster in production").
resource "google_sql_database" "dagster" {
  name     = "dagster"
  instance = google_sql_database_instance.mlflow.name
}

# Dagster logs in as its own user, not as `mlflow`: the VM never holds the password that can
# rewrite the MLflow tables. Grants inside PostgreSQL (`dagster` owns only its database) are a
# one-off step in docs/rollout.md; Cloud SQL users are created with cloudsqlsuperuser rights.
resource "random_password" "dagster_db" {
  length  = 32
  special = false
}

resource "google_sql_user" "dagster" {
  name     = "dagster"
  instance = google_sql_database_instance.mlflow.name
  password = random_password.dagster_db.result
}
