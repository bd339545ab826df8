# Residency as an organisation policy: resources of this project can only be created in
# europe-west3, whatever a later change to this code says.
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
