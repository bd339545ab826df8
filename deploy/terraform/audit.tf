# Data Access audit logs are off by default for every service but BigQuery
# (https://cloud.google.com/logging/docs/audit/configure-data-access). Without this, the
# europe-west3 log bucket would hold no record of who went through IAP, who read a secret or an
# artifact object, and no pgAudit lines (Cloud SQL writes them as Data Access logs). Like the
# request logs, they name people: 30 days, the project's log viewers only (docs/security.md).
locals {
  data_access_audited = toset([
    "iap.googleapis.com",           # who passed IAP (web and programmatic)
    "sqladmin.googleapis.com",      # carries pgAudit's statements (database.tf)
    "storage.googleapis.com",       # reads and writes of artifact objects
    "secretmanager.googleapis.com", # who read a database password
  ])
}

resource "google_project_iam_audit_config" "data_access" {
  for_each = local.data_access_audited
  project  = var.project_id
  service  = each.value

  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
