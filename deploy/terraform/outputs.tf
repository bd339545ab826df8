output "mlflow_url" {
  description = "MLFLOW_TRACKING_URI for people and pipelines (IAP in front; the deterministic run.app URL that --allowed-hosts names)."
  value       = "https://${local.run_host}"
}

output "iap_audience" {
  description = "The audience the server plugin expects in x-goog-iap-jwt-assertion."
  value       = local.iap_audience
}

output "artifact_bucket" {
  value = google_storage_bucket.artifacts.name
}

output "workload_identity_provider" {
  description = "For google-github-actions/auth: workload_identity_provider."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "ci_service_account" {
  description = "For google-github-actions/auth: service_account (may only submit builds)."
  value       = google_service_account.ci.email
}

output "build_service_account" {
  description = "gcloud builds submit --region=europe-west3 --service-account=<this>."
  value       = google_service_account.ci_build.id
}
