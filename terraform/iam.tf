# One service account per function, each granted only what its code path needs, plus the
# identities that call the functions: Eventarc / Pub/Sub push (events), Cloud Scheduler
# (scheduler), Workflows (workflows) and the Cloud Build identity that builds function images.
#
#   function  Pub/Sub                      Cloud SQL  Redis  GCS raw bucket   secrets
#   ingest    publish embeddings           client     yes    -                db, redis, api keys
#   persist   publish dead-letter          client     yes    write objects    db, redis
#   stats     publish dead-letter          client     yes    -                db, redis
#   detect    -                            client     yes    -                db, redis, pagerduty, keys
#   api       -                            client     yes    -                db, redis, pagerduty, keys
# (Redis access is by AUTH string over the VPC, so it needs no IAM role, only the redis secrets.)

resource "google_service_account" "fn" {
  for_each = local.functions

  account_id   = "${var.name_prefix}-fn-${each.key}"
  display_name = "drift monitor ${each.key} function"
}

resource "google_service_account" "events" {
  account_id   = "${var.name_prefix}-events"
  display_name = "drift monitor Pub/Sub delivery to persist/stats"
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "drift monitor Cloud Scheduler caller of detect"
}

resource "google_service_account" "workflows" {
  account_id   = "${var.name_prefix}-workflows"
  display_name = "drift monitor Workflows (backfill, baseline refresh, scheduled detection)"
}

resource "google_service_account" "builder" {
  account_id   = "${var.name_prefix}-builder"
  display_name = "drift monitor Cloud Functions image builds"
}

# --- Pub/Sub ------------------------------------------------------------------------------
resource "google_pubsub_topic_iam_member" "ingest_publisher" {
  topic  = google_pubsub_topic.embeddings.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn["ingest"].member
}

# Subscribers publish malformed messages to the dead-letter topic themselves.
resource "google_pubsub_topic_iam_member" "subscriber_dead_letter" {
  for_each = local.subscribers

  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn[each.key].member
}

# --- Cloud SQL: connect through the connector, only to this instance ----------------------
resource "google_project_iam_member" "sql_client" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.fn[each.key].member

  condition {
    title      = "only-${google_sql_database_instance.main.name}"
    expression = "resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.main.name}' && resource.service == 'sqladmin.googleapis.com'"
  }
}

# --- Cloud Storage: persist archives raw batches -------------------------------------------
resource "google_storage_bucket_iam_member" "persist_archive" {
  bucket = google_storage_bucket.raw_batches.name
  # objectUser = create, read and overwrite objects (a redelivered batch rewrites its object);
  # no bucket or IAM administration.
  role   = "roles/storage.objectUser"
  member = google_service_account.fn["persist"].member
}

# --- Invokers ------------------------------------------------------------------------------
# 2nd-gen functions are Cloud Run services: invoking one needs roles/run.invoker on it. Nothing
# here grants allUsers/allAuthenticatedUsers (variables.tf rejects them for ingest and api).
locals {
  invoker_bindings = merge(
    { for m in var.ingest_invokers : "ingest/${m}" => { function = "ingest", member = m } },
    { for m in var.api_invokers : "api/${m}" => { function = "api", member = m } },
    { for e in var.api_admin_token_invokers : "api/serviceAccount:${e}" => { function = "api", member = "serviceAccount:${e}" } },
    { "detect/scheduler" = { function = "detect", member = google_service_account.scheduler.member } },
    # The workflows call detect (API role) and api (admin role); their roles in the monitor's
    # own check are in functions.tf (env_tokens_detect, env_tokens_api).
    { "detect/workflows" = { function = "detect", member = google_service_account.workflows.member } },
    { "api/workflows" = { function = "api", member = google_service_account.workflows.member } },
    { for fn in keys(local.subscribers) : "${fn}/events" => { function = fn, member = google_service_account.events.member } },
  )
}

resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = local.invoker_bindings

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.value.function].name
  role     = "roles/run.invoker"
  member   = each.value.member
}

# Eventarc triggers need their service account to receive events.
resource "google_project_iam_member" "events_receiver" {
  count = var.subscriber_transport == "eventarc" ? 1 : 0

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.events.member
}

# Pub/Sub mints the OIDC tokens of push deliveries as the events account.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.events.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

# --- Workflows write their step logs ----------------------------------------------------------
resource "google_project_iam_member" "workflows_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.workflows.member
}

# --- Function image builds ------------------------------------------------------------------
resource "google_project_iam_member" "builder" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = google_service_account.builder.member
}

resource "google_storage_bucket_iam_member" "builder_source" {
  bucket = google_storage_bucket.function_source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.builder.member
}

# Deployers (Cloud Build) act as the runtime accounts when deploying the functions; grant that
# on each account, not project-wide. var.deployer_member is the Cloud Build service account.
resource "google_service_account_iam_member" "deployer_act_as" {
  for_each = var.deployer_member == null ? {} : merge(
    { for k, sa in google_service_account.fn : k => sa.name },
    { builder = google_service_account.builder.name, events = google_service_account.events.name },
  )

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = var.deployer_member
}
