# HTTPS load balancer with IAP in front of Cloud Run: every request carries a Google identity
# before MLflow's own basic-auth sees it.
resource "google_compute_region_network_endpoint_group" "mlflow" {
  name                  = "mlflow"
  region                = var.region
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    service = google_cloud_run_v2_service.mlflow.name
  }
}

resource "google_compute_backend_service" "mlflow" {
  name                  = "mlflow"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.mlflow.id
  }

  iap {
    enabled = true
  }
}

resource "google_compute_url_map" "mlflow" {
  name            = "mlflow"
  default_service = google_compute_backend_service.mlflow.id
}

resource "google_compute_managed_ssl_certificate" "mlflow" {
  name = "mlflow"
  managed {
    domains = [var.domain]
  }
}

resource "google_compute_target_https_proxy" "mlflow" {
  name             = "mlflow"
  url_map          = google_compute_url_map.mlflow.id
  ssl_certificates = [google_compute_managed_ssl_certificate.mlflow.id]
  ssl_policy       = google_compute_ssl_policy.modern.id
}

resource "google_compute_ssl_policy" "modern" {
  name            = "mlflow-modern-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_global_address" "mlflow" {
  name = "mlflow"
}

resource "google_compute_global_forwarding_rule" "mlflow" {
  name                  = "mlflow"
  target                = google_compute_target_https_proxy.mlflow.id
  ip_address            = google_compute_global_address.mlflow.address
  port_range            = "443"
  load_balancing_scheme = "EXTERNAL_MANAGED"
}

# Who gets through IAP: the team's people and the pipeline's service account.
resource "google_iap_web_backend_service_iam_member" "users" {
  for_each            = toset(concat(var.iap_members, ["serviceAccount:${var.pipeline_service_account}"]))
  web_backend_service = google_compute_backend_service.mlflow.name
  role                = "roles/iap.httpsResourceAccessor"
  member              = each.value
}
