variable "project_id" {
  description = "GCP project that hosts the MLflow deployment."
  type        = string
}

variable "region" {
  description = "Every regional resource lives here; data stays in Frankfurt."
  type        = string
  default     = "europe-west3"
  validation {
    condition     = var.region == "europe-west3"
    error_message = "Data must stay in europe-west3 (Frankfurt)."
  }
}

variable "image" {
  description = "MLflow server image built from deploy/mlflow-server (Artifact Registry, europe-west3)."
  type        = string
}

variable "iap_members" {
  description = "People and groups allowed through IAP (data scientists, approvers), e.g. group:ds@magenta.example."
  type        = list(string)
  default     = []
}

variable "zone" {
  description = "Zone of the Dagster VM, inside the region."
  type        = string
  default     = "europe-west3-a"
  validation {
    condition     = startswith(var.zone, "europe-west3-")
    error_message = "The Dagster VM must stay in europe-west3."
  }
}

variable "dagster_machine_type" {
  description = "Dagster VM size: e2-small (2 GB) for the small team; e2-medium past ~1M training rows (docs/costs.md)."
  type        = string
  default     = "e2-small"
}

variable "dagster_image" {
  description = "Dagster image built from deploy/dagster/Dockerfile (Artifact Registry, europe-west3)."
  type        = string
}

variable "dagster_operators" {
  description = "Who may open an IAP tunnel to the Dagster VM (UI on 3000, SSH via OS Login), e.g. group:data-eng@magenta.example."
  type        = list(string)
  default     = []
}

variable "iap_programmatic_clients" {
  description = "OAuth client ids whose ID tokens IAP accepts from non-browser clients: gcloud's client (people's application-default credentials) and the client service accounts mint tokens for."
  type        = list(string)
  default     = []
}

variable "iap_client_audience" {
  description = "The audience clients request their ID token for (MAGENTA_RELEASE_IAP_CLIENT_ID on a client): one of iap_programmatic_clients. Not the server's signed-header audience."
  type        = string
  default     = ""
}

variable "features_uri" {
  description = "Training table the Dagster code location reads (MAGENTA_RELEASE_FEATURES_URI), e.g. gs://BUCKET/churn/features/ in europe-west3."
  type        = string
  default     = ""
}

variable "customers_uri" {
  description = "Customers to score (MAGENTA_RELEASE_CUSTOMERS_URI), e.g. gs://BUCKET/churn/current_customers/."
  type        = string
  default     = ""
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) that holds the budget."
  type        = string
}

variable "monthly_budget_usd" {
  description = "Monthly budget; alerts at 50, 90 and 100 percent (docs/costs.md expects $34.31 for a small team)."
  type        = number
  default     = 60
}

variable "artifact_retention_days" {
  description = "Noncurrent artifact object versions are deleted after this many days."
  type        = number
  default     = 30
}

variable "github_repository" {
  description = "owner/name of the one GitHub repository whose workflows may federate into GCP."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "log_retention_days" {
  description = "Days the europe-west3 log bucket keeps request and IAP logs (purpose limitation: docs/security.md)."
  type        = number
  default     = 30
}
