# A cost surprise should be an e-mail, not an invoice: alerts at 50 %, 90 % and 100 % of the
# monthly budget (docs/costs.md: $34.31 expected for a small team), and at 100 % of the forecast.
# The budget lives on the billing account, so whoever applies this needs Billing Account
# Costs Manager there (docs/rollout.md, "Infrastructure requirements").
resource "google_billing_budget" "mlflow" {
  billing_account = var.billing_account
  display_name    = "magenta-release (${var.project_id})"

  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = tostring(var.monthly_budget_usd)
    }
  }

  threshold_rules {
    threshold_percent = 0.5
  }
  threshold_rules {
    threshold_percent = 0.9
  }
  threshold_rules {
    threshold_percent = 1.0
  }
  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  # Billing admins and users of the billing account get the e-mails (Cloud Billing's default).
  all_updates_rule {
    disable_default_iam_recipients = false
  }
  depends_on = [google_project_service.enabled]
}
