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

variable "pipeline_service_account" {
  description = "Service account of the Dagster deployment (the only automated writer)."
  type        = string
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
