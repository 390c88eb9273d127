# Cloud Scheduler runs drift detection for every model, as the dedicated scheduler account.
#
# detection_trigger = "workflow" (default): the job starts the scheduled_detection workflow
#   (OAuth token of the scheduler account, roles/workflows.invoker on that workflow only); the
#   workflow calls detect with its own ID token in both X-Serverless-Authorization (Cloud Run's
#   invoker check) and Authorization (the app's check, entrypoints/auth.py: the workflows
#   account is in detect's DRIFT_MONITOR_INVOKERS); no key is involved.
# detection_trigger = "direct": the job POSTs /drift/check to the detect function with an OIDC
#   ID token of the scheduler account (audience = the function URL). A Scheduler HTTP job can
#   carry only that one token, in Authorization; Cloud Run checks it against roles/run.invoker
#   and then replaces its signature with SIGNATURE_REMOVED_BY_GOOGLE before the request reaches
#   the code. The app verifies Google ID tokens itself (the scheduler account is in detect's
#   DRIFT_MONITOR_INVOKERS) but cannot verify an unsigned one, and must not trust it (a caller
#   that passes the invoker check with X-Serverless-Authorization controls Authorization), so
#   it answers 401. The direct path therefore works only where the token reaches the function
#   intact, i.e. without Cloud Run's invoker check on detect, which this module does not do.

locals {
  detect_url = google_cloudfunctions2_function.fn["detect"].service_config[0].uri
  # Scheduler allows up to 30 minutes for an HTTP attempt.
  scheduler_deadline = "${min(local.functions["detect"].timeout_seconds, 1800)}s"
}

resource "google_cloud_scheduler_job" "detect" {
  name             = "${var.name_prefix}-drift-check"
  description      = "Run drift detection for every model (POST /drift/check)"
  region           = var.region
  schedule         = var.detection_schedule
  time_zone        = var.detection_time_zone
  attempt_deadline = var.detection_trigger == "direct" ? local.scheduler_deadline : "180s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri = (var.detection_trigger == "direct"
      ? "${local.detect_url}/drift/check${var.detection_fanout ? "?fanout=true" : ""}"
      : "https://workflowexecutions.googleapis.com/v1/${google_workflows_workflow.job["scheduled_detection"].id}/executions"
    )
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode(var.detection_trigger == "direct" ? "{}" : jsonencode({ argument = jsonencode({ fanout = var.detection_fanout }) }))

    dynamic "oidc_token" {
      for_each = var.detection_trigger == "direct" ? [1] : []
      content {
        service_account_email = google_service_account.scheduler.email
        audience              = local.detect_url
      }
    }

    dynamic "oauth_token" {
      for_each = var.detection_trigger == "workflow" ? [1] : []
      content {
        service_account_email = google_service_account.scheduler.email
        scope                 = "https://www.googleapis.com/auth/cloud-platform"
      }
    }
  }

  depends_on = [google_cloud_run_service_iam_member.invoker, google_project_iam_member.scheduler_workflows]
}

# Start executions of the scheduled_detection workflow and nothing else.
resource "google_project_iam_member" "scheduler_workflows" {
  count = var.detection_trigger == "workflow" ? 1 : 0

  project = var.project_id
  role    = "roles/workflows.invoker"
  member  = google_service_account.scheduler.member

  condition {
    title      = "only-scheduled-detection"
    expression = "resource.name == '${google_workflows_workflow.job["scheduled_detection"].id}'"
  }
}
