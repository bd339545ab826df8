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

variable "domain" {
  description = "Host name behind IAP, e.g. mlflow.magenta.example."
  type        = string
}

variable "iap_members" {
  description = "People and groups allowed through IAP (data scientists, approvers)."
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
