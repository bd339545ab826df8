output "mlflow_url" {
  description = "The tracking URI for MLFLOW_TRACKING_URI (behind IAP)."
  value       = "https://${var.domain}"
}

output "artifact_bucket" {
  value = google_storage_bucket.artifacts.name
}

output "load_balancer_ip" {
  description = "Point the domain's A record here."
  value       = google_compute_global_address.mlflow.address
}
