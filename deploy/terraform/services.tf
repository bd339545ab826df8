# Every API this configuration uses, enabled here rather than by hand, so a fresh project applies
# in one pass. disable_on_destroy = false: destroying this stack must not switch off an API that
# other workloads in the project may use.
locals {
  services = toset([
    "artifactregistry.googleapis.com",     # images and the PyPI mirror
    "billingbudgets.googleapis.com",       # the budget and its alerts (budget.tf)
    "cloudbuild.googleapis.com",           # image builds in europe-west3 (deploy/cloudbuild)
    "cloudkms.googleapis.com",             # CMEK keys
    "cloudresourcemanager.googleapis.com", # project IAM bindings
    "compute.googleapis.com",              # VPC, subnet, the Dagster VM and its firewall
    "iam.googleapis.com",                  # service accounts, workload identity pool
    "iamcredentials.googleapis.com",       # CI impersonates its service account
    "iap.googleapis.com",                  # IAP on Cloud Run, TCP forwarding to the Dagster VM
    "logging.googleapis.com",              # regional log bucket and _Default sink
    "orgpolicy.googleapis.com",            # gcp.resourceLocations
    "run.googleapis.com",                  # the MLflow server
    "secretmanager.googleapis.com",        # database URIs and keys
    "servicenetworking.googleapis.com",    # private services access for Cloud SQL
    "sqladmin.googleapis.com",             # Cloud SQL
    "storage.googleapis.com",              # artifact bucket
    "sts.googleapis.com",                  # GitHub OIDC token exchange
  ])
}

resource "google_project_service" "enabled" {
  for_each           = local.services
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
