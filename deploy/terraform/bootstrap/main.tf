# Bootstrap: the bucket that holds the main configuration's Terraform state, and its key.
# Applied once, by a person, with local state (this directory's terraform.tfstate holds no secret:
# only names and ids); then `terraform init -backend-config="bucket=PROJECT_ID-tfstate"` in the
# parent directory. The state of the main configuration contains the generated database and admin
# passwords, hence a bucket of its own: regional, CMEK, versioned, never public, not deletable.
terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
  }
}

variable "project_id" {
  description = "The project of the main configuration."
  type        = string
}

variable "region" {
  description = "The state stays in Frankfurt, like everything it describes."
  type        = string
  default     = "europe-west3"
  validation {
    condition     = var.region == "europe-west3"
    error_message = "Terraform state must stay in europe-west3 (Frankfurt)."
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

resource "google_project_service" "bootstrap" {
  for_each           = toset(["cloudkms.googleapis.com", "storage.googleapis.com"])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_kms_key_ring" "tfstate" {
  name       = "tfstate"
  location   = var.region
  depends_on = [google_project_service.bootstrap]
}

resource "google_kms_crypto_key" "tfstate" {
  name            = "tfstate"
  key_ring        = google_kms_key_ring.tfstate.id
  rotation_period = "7776000s" # 90 days
  lifecycle {
    prevent_destroy = true
  }
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "gcs_uses_tfstate_key" {
  crypto_key_id = google_kms_crypto_key.tfstate.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_bucket" "tfstate" {
  name                        = "${var.project_id}-tfstate"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.tfstate.id
  }

  # Keep the last 10 state versions for recovery from a bad apply.
  lifecycle_rule {
    condition {
      num_newer_versions = 10
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_tfstate_key]
}

output "state_bucket" {
  description = "terraform init -backend-config=\"bucket=<this>\" in deploy/terraform."
  value       = google_storage_bucket.tfstate.name
}
