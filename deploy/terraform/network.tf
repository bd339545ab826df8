# A private network: Cloud SQL has no public IP, Cloud Run egresses into the VPC only, and
# Google APIs (GCS, Secret Manager) are reached through Private Google Access. No Cloud NAT,
# so nothing in the deployment can reach the internet.
resource "google_compute_network" "mlflow" {
  name                    = "mlflow"
  auto_create_subnetworks = false
  depends_on              = [google_project_service.enabled]
}

resource "google_compute_subnetwork" "mlflow" {
  name                     = "mlflow-${var.region}"
  region                   = var.region
  network                  = google_compute_network.mlflow.id
  ip_cidr_range            = "10.20.0.0/24"
  private_ip_google_access = true
}

resource "google_compute_global_address" "sql_peering" {
  name          = "mlflow-sql-peering"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.mlflow.id
}

resource "google_service_networking_connection" "sql" {
  network                 = google_compute_network.mlflow.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.sql_peering.name]
}
