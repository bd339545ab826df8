# Residency as an organisation policy: regional and zonal resources of this project can only be
# created in europe-west3, whatever a later change to this code says. It does not constrain
# global resources (IAM, the workload identity pool, a global load balancer if one were added)
# nor log buckets created before it: logging.tf pins the log bucket itself.
resource "google_org_policy_policy" "resource_locations" {
  name   = "projects/${var.project_id}/policies/gcp.resourceLocations"
  parent = "projects/${var.project_id}"

  spec {
    rules {
      values {
        allowed_values = ["in:europe-west3-locations"]
      }
    }
  }
}
