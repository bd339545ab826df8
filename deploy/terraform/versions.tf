terraform {
  # 1.6+: variables in `import` block ids (logging.tf adopts the existing _Default sink).
  required_version = ">= 1.6"

  # Remote state in the CMEK bucket created by ./bootstrap (europe-west3). A backend block cannot
  # read variables, so the bucket is passed at init time:
  #   terraform init -backend-config="bucket=PROJECT_ID-tfstate"
  backend "gcs" {
    prefix = "magenta-release/mlflow"
  }

  required_providers {
    # 7.x: `iap_enabled` on google_cloud_run_v2_service and the IAP IAM resources for Cloud Run
    # are in the GA provider (GoogleCloudPlatform/magic-modules#16445).
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # Only for google_project_service_identity (service agents), which exists in beta only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

provider "google-beta" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}
