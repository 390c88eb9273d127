# GCP Workflows for multi-step jobs. Each call to the api/detect functions carries a Google ID
# token of the workflows service account (in X-Serverless-Authorization, checked by Cloud Run
# against run.invoker) and a key from Secret Manager (Authorization: Bearer, checked by the app).
#   gcloud workflows run drift-backfill --location=REGION \
#     --data='{"model_id": "bert-base", "start": "2024-01-01T00:00:00Z", "end": "2024-01-08T00:00:00Z"}'

locals {
  workflows = {
    backfill = {
      description = "Rebuild running statistics of one model from Cloud SQL, then rerun detection"
      key         = "admin_key"
    }
    baseline_refresh = {
      description = "Pin a new baseline for one model after an approved model change, then rerun detection"
      key         = "admin_key"
    }
    scheduled_detection = {
      description = "Run drift detection for every model (started by Cloud Scheduler)"
      key         = "api_key"
    }
  }
}

resource "google_workflows_workflow" "job" {
  for_each = local.workflows

  name            = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  region          = var.region
  description     = each.value.description
  service_account = google_service_account.workflows.id
  call_log_level  = "LOG_ERRORS_ONLY"
  labels          = var.labels
  source_contents = file("${path.module}/../workflows/${each.key}.yaml")

  user_env_vars = {
    API_URL    = google_cloudfunctions2_function.fn["api"].service_config[0].uri
    DETECT_URL = google_cloudfunctions2_function.fn["detect"].service_config[0].uri
    KEY_SECRET = google_secret_manager_secret.secret[each.value.key].secret_id
  }

  depends_on = [google_project_service.apis]
}

# The workflows read the two keys and mint ID tokens for themselves.
resource "google_secret_manager_secret_iam_member" "workflows_keys" {
  for_each = toset(["admin_key", "api_key"])

  secret_id = google_secret_manager_secret.secret[each.value].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.workflows.member
}

resource "google_service_account_iam_member" "workflows_id_tokens" {
  service_account_id = google_service_account.workflows.name
  role               = "roles/iam.serviceAccountOpenIdTokenCreator"
  member             = google_service_account.workflows.member
}
