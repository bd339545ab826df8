# Builds, in europe-west3, and what is *not* built yet.
#
# Today: a platform engineer submits deploy/cloudbuild/images.yaml (server and Dagster images) with
# `gcloud builds submit --region=europe-west3 --service-account=<ci-build>`; the build runs in the
# region as ci-build, which may push images and write logs, and nothing else. Only source code goes
# into a build; no build talks to the MLflow server (ci-build has no IAP access).
#
# Prepared, unused: a workload identity pool for GitHub Actions, restricted to one repository's
# `main`, whose identity may only submit builds as ci-build. No workflow in .github/ uses it yet;
# the GitHub-hosted workflows run against throwaway embedded stores on generated data and hold no
# credential for anything here (docs/architecture.md, "CI, what runs where today").
#
# The pool and provider are global IAM resources (there is no regional variant); they hold no data.
resource "google_iam_workload_identity_pool" "github" {
  workload_identity_pool_id = "github"
  display_name              = "GitHub Actions"
  depends_on                = [google_project_service.enabled]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-oidc"
  display_name                       = "GitHub OIDC"

  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }
  # Only this repository's workflows on its default branch can exchange a token; a fork or another
  # repository of the same owner gets nothing.
  attribute_condition = "assertion.repository == \"${var.github_repository}\" && assertion.ref == \"refs/heads/main\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

# The identity GitHub Actions becomes: may submit builds, nothing else.
resource "google_service_account" "ci" {
  account_id   = "ci-github"
  display_name = "GitHub Actions (submits Cloud Build jobs only)"
}

resource "google_service_account_iam_member" "github_is_ci" {
  service_account_id = google_service_account.ci.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/attribute.repository/${var.github_repository}"
}

resource "google_project_iam_member" "ci_submits_builds" {
  project = var.project_id
  role    = "roles/cloudbuild.builds.editor"
  member  = "serviceAccount:${google_service_account.ci.email}"
}

# The identity the build runs as, in europe-west3.
resource "google_service_account" "ci_build" {
  account_id   = "ci-build"
  display_name = "Cloud Build in europe-west3 (image builds and pushes only)"
}

# CI may start builds as ci-build, and only as ci-build.
resource "google_service_account_iam_member" "ci_acts_as_build" {
  service_account_id = google_service_account.ci_build.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.ci.email}"
}

resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.ci_build.email}"
}

resource "google_artifact_registry_repository" "images" {
  repository_id = "mlflow"
  location      = var.region
  format        = "DOCKER"
  description   = "MLflow server image built from deploy/mlflow-server."
  depends_on    = [google_project_service.enabled]
}

resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.ci_build.email}"
}

# `gcloud builds submit` uploads the source to gs://PROJECT_cloudbuild (US multi-region) unless
# told otherwise: pass --gcs-source-staging-dir=gs://PROJECT-cloudbuild-eu/source. Only code goes
# there (no data); objects are deleted after 7 days.
resource "google_storage_bucket" "build_source" {
  name                        = "${var.project_id}-cloudbuild-eu"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_iam_member" "ci_uploads_source" {
  bucket = google_storage_bucket.build_source.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.ci.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.build_source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.ci_build.email}"
}
