output "mlflow_url" {
  description = "MLFLOW_TRACKING_URI for people and pipelines (IAP in front; the deterministic run.app URL that --allowed-hosts names)."
  value       = "https://${local.run_host}"
}

# Two audiences, two variables (docs/architecture.md, "How clients reach the server"): the server
# reads MAGENTA_RELEASE_IAP_HEADER_AUDIENCE, a client MAGENTA_RELEASE_IAP_CLIENT_ID.
output "iap_signed_header_audience" {
  description = "SERVER side: the aud the plugin expects in x-goog-iap-jwt-assertion (set in the Cloud Run env)."
  value       = local.iap_audience
}

output "iap_client_audience" {
  description = "CLIENT side: the audience people and Dagster request their ID token for (an allowlisted OAuth client id)."
  value       = var.iap_client_audience
}

output "dagster_tunnel" {
  description = "How a Dagster operator opens the UI."
  value       = "gcloud compute start-iap-tunnel ${google_compute_instance.dagster.name} 3000 --local-host-port=localhost:3000 --zone ${var.zone}"
}

output "artifact_bucket" {
  value = google_storage_bucket.artifacts.name
}

output "workload_identity_provider" {
  description = "For google-github-actions/auth: workload_identity_provider."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "ci_service_account" {
  description = "For a future keyless image-build workflow (google-github-actions/auth): may only submit builds. Unused today."
  value       = google_service_account.ci.email
}

output "build_service_account" {
  description = "gcloud builds submit --config deploy/cloudbuild/images.yaml --region=europe-west3 --service-account=<this>."
  value       = google_service_account.ci_build.id
}
