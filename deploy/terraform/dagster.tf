# Dagster in production: webserver, daemon and runs on one VM in europe-west3 with no public IP
# (docs/architecture.md, "Dagster in production"). People reach its UI only through IAP TCP
# forwarding; the VM reaches MLflow through IAP, Cloud SQL over the private IP, and Google APIs
# (Artifact Registry, Secret Manager, Logging) through Private Google Access. There is no NAT, so
# nothing is installed from the internet: the VM runs a prebuilt image from Artifact Registry
# (deploy/dagster/Dockerfile, built by Cloud Build), and a PyPI remote repository in the region
# serves any package installed later.
resource "google_service_account" "dagster" {
  account_id   = "dagster"
  display_name = "Dagster VM (trains and proposes; the pipeline's MLflow user)"
  depends_on   = [google_project_service.enabled]
}

resource "google_compute_instance" "dagster" {
  name                = "dagster"
  zone                = var.zone
  machine_type        = var.dagster_machine_type
  tags                = ["dagster"]
  deletion_protection = true

  boot_disk {
    initialize_params {
      image = "cos-cloud/cos-stable"
      size  = 10
      type  = "pd-balanced"
    }
  }

  # No access_config block: no external IP.
  network_interface {
    subnetwork = google_compute_subnetwork.mlflow.id
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  service_account {
    email  = google_service_account.dagster.email
    scopes = ["cloud-platform"] # what it may do is decided by its IAM roles below
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    google-logging-enabled = "true"
    user-data = templatefile("${path.module}/../dagster/cloud-init.yaml", {
      image           = var.dagster_image
      registry_host   = "${var.region}-docker.pkg.dev"
      db_host         = google_sql_database_instance.mlflow.private_ip_address
      db_password_url = "https://secretmanager.googleapis.com/v1/${google_secret_manager_secret.dagster_db.id}/versions/latest:access"
      mlflow_url      = "https://${local.run_host}"
      client_audience = var.iap_client_audience
      features_uri    = var.features_uri
      customers_uri   = var.customers_uri
    })
  }

  depends_on = [google_secret_manager_secret_version.dagster_db]
}

# IAP's TCP forwarding connects from this range only (https://cloud.google.com/iap/docs/using-tcp-forwarding);
# nothing else may open a connection to the VM.
resource "google_compute_firewall" "iap_to_dagster" {
  name          = "allow-iap-tcp-forwarding-to-dagster"
  network       = google_compute_network.mlflow.id
  direction     = "INGRESS"
  source_ranges = ["35.235.240.0/20"]
  target_tags   = ["dagster"]

  allow {
    protocol = "tcp"
    ports    = ["22", "3000"] # SSH (OS Login) and the Dagster webserver
  }
}

# Who may open a tunnel to the VM (and SSH in through OS Login): the data engineers, by name.
resource "google_iap_tunnel_instance_iam_member" "operators" {
  for_each = toset(var.dagster_operators)
  project  = var.project_id
  zone     = var.zone
  instance = google_compute_instance.dagster.name
  role     = "roles/iap.tunnelResourceAccessor"
  member   = each.value
}

resource "google_compute_instance_iam_member" "operators_login" {
  for_each      = toset(var.dagster_operators)
  project       = var.project_id
  zone          = var.zone
  instance_name = google_compute_instance.dagster.name
  role          = "roles/compute.osLogin"
  member        = each.value
}

# Its database password, in the region, readable by the VM alone.
resource "google_secret_manager_secret" "dagster_db" {
  secret_id  = "dagster-db-password"
  depends_on = [google_project_service.enabled]

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_version" "dagster_db" {
  secret      = google_secret_manager_secret.dagster_db.id
  secret_data = random_password.dagster_db.result
}

resource "google_secret_manager_secret_iam_member" "dagster_reads_db_password" {
  secret_id = google_secret_manager_secret.dagster_db.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.dagster.email}"
}

# Packages without NAT: a PyPI mirror in the region (pip --index-url
# https://europe-west3-python.pkg.dev/PROJECT/pypi/simple/), reached through Private Google Access.
resource "google_artifact_registry_repository" "pypi" {
  repository_id = "pypi"
  location      = var.region
  format        = "PYTHON"
  mode          = "REMOTE_REPOSITORY"
  description   = "PyPI mirror for hosts without internet access (no NAT)."

  remote_repository_config {
    description = "PyPI"
    python_repository {
      public_repository = "PYPI"
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_artifact_registry_repository_iam_member" "dagster_pulls_images" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.dagster.email}"
}

resource "google_artifact_registry_repository_iam_member" "dagster_reads_pypi" {
  location   = google_artifact_registry_repository.pypi.location
  repository = google_artifact_registry_repository.pypi.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.dagster.email}"
}

resource "google_project_iam_member" "dagster_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.dagster.email}"
}
