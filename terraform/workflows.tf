# GCP Workflows for multi-step jobs. Each call to the api/detect functions carries one Google ID
# token of the workflows service account, minted for the function's URL, in two headers:
# X-Serverless-Authorization (Cloud Run's invoker check against roles/run.invoker, iam.tf) and
# Authorization (the monitor's own check: the account is in the function's invoker allowlist,
# functions.tf). No key and no Secret Manager access is involved; see workflows/backfill.yaml.
#   gcloud workflows run drift-backfill --location=REGION \
#     --data='{"model_id": "bert-base", "start": "2024-01-01T00:00:00Z", "end": "2024-01-08T00:00:00Z"}'

locals {
  # Where the workflows call the functions, and the audience of the tokens they mint: each
  # function's deterministic run.app URL, the first of its GOOGLE_ID_TOKEN_AUDIENCE values
  # (functions.tf), so one token satisfies both Cloud Run (a token for the URL called) and the
  # monitor (an audience it accepts). service_config[0].uri (https://NAME-HASH-REGION.a.run.app)
  # reaches the same service, but is not among the audiences the function accepts.
  workflow_function_urls = {
    API_URL    = split(",", local.function_audiences["api"])[0]
    DETECT_URL = split(",", local.function_audiences["detect"])[0]
  }

  workflows = {
    backfill = {
      description = "Rebuild running statistics of one model from Cloud SQL, then rerun detection"
    }
    baseline_refresh = {
      description = "Pin a new baseline for one model after an approved model change, then rerun detection"
    }
    scheduled_detection = {
      description = "Run drift detection for every model (started by Cloud Scheduler)"
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

  user_env_vars = local.workflow_function_urls

  depends_on = [google_project_service.apis]
}

# The workflows mint ID tokens for themselves (generateIdToken on their own account).
resource "google_service_account_iam_member" "workflows_id_tokens" {
  service_account_id = google_service_account.workflows.name
  role               = "roles/iam.serviceAccountOpenIdTokenCreator"
  member             = google_service_account.workflows.member
}
