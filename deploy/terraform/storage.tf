# Model artifacts: one regional bucket (not the EU multi-region: an exact location),
# uniform access, never public, versioned, CMEK, old versions expire.
resource "google_storage_bucket" "artifacts" {
  name                        = "${var.project_id}-mlflow-artifacts"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.artifacts.id
  }

  lifecycle_rule {
    condition {
      num_newer_versions         = 1
      days_since_noncurrent_time = var.artifact_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 180
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  # force_destroy = false refuses to delete a bucket with objects; prevent_destroy refuses the
  # plan that would delete it at all.
  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_artifacts_key]
}

# Only the MLflow server writes artifacts (clients upload through its proxy).
resource "google_storage_bucket_iam_member" "server_writes_artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.mlflow_server.email}"
}
