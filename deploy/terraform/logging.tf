# Request logs of the Cloud Run service and IAP's data-access audit logs name people (their
# e-mail). By default they land in the project's _Default log bucket, whose location is `global`
# unless the organisation set a default storage location before the project was created; the
# org policy gcp.resourceLocations does not move it. So: a log bucket in europe-west3, and the
# project's _Default sink routed to it instead of to the global _Default bucket.
#
# Not covered here: the _Required bucket (Admin Activity and System Event audit logs, which name
# the administrators who changed IAM or the service). Its location can only be set through the
# organisation's default resource settings for Cloud Logging before the project exists; that is a
# prerequisite in docs/rollout.md.
resource "google_logging_project_bucket_config" "eu" {
  project        = var.project_id
  location       = var.region
  bucket_id      = "mlflow-eu"
  retention_days = var.log_retention_days
  description    = "Request and IAP logs of the MLflow deployment, kept in europe-west3."
  depends_on     = [google_project_service.enabled]
}

# The _Default sink exists in every project; adopt it instead of creating a second sink.
import {
  to = google_logging_project_sink.default
  id = "projects/${var.project_id}/sinks/_Default"
}

resource "google_logging_project_sink" "default" {
  project     = var.project_id
  name        = "_Default"
  destination = "logging.googleapis.com/${google_logging_project_bucket_config.eu.id}"
  # Google's own filter for _Default: everything except what the _Required sink already takes.
  filter = join(" AND ", [
    "NOT LOG_ID(\"cloudaudit.googleapis.com/activity\")",
    "NOT LOG_ID(\"externalaudit.googleapis.com/activity\")",
    "NOT LOG_ID(\"cloudaudit.googleapis.com/system_event\")",
    "NOT LOG_ID(\"externalaudit.googleapis.com/system_event\")",
    "NOT LOG_ID(\"cloudaudit.googleapis.com/access_transparency\")",
    "NOT LOG_ID(\"externalaudit.googleapis.com/access_transparency\")",
  ])
  unique_writer_identity = true
}
