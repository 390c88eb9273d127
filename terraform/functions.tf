# The five Cloud Functions (2nd gen). They share one source (functions/main.py plus the
# drift_monitor wheel, built by scripts/package_functions.py) and differ in entry point, trigger,
# sizing, environment, service account and who may invoke them.

locals {
  # Sizing, with the reasoning. Concurrency above 1 needs at least one whole vCPU.
  function_defaults = {
    # JSON decode of up to 32 MiB bodies is CPU and memory heavy; keep one warm instance so
    # producers do not see cold starts.
    ingest = { memory = "2Gi", cpu = "1", timeout_seconds = 60, concurrency = 4, min_instances = 1, max_instances = 50 }
    # I/O bound: one INSERT per part. Instances x concurrency x pool stays below Cloud SQL's
    # connection limit.
    persist = { memory = "1Gi", cpu = "1", timeout_seconds = 300, concurrency = 4, min_instances = 0, max_instances = 20 }
    # numpy folding of a part into histograms and a reservoir; CPU bound.
    stats = { memory = "2Gi", cpu = "1", timeout_seconds = 300, concurrency = 2, min_instances = 0, max_instances = 20 }
    # Runs every model's tests (permutation MMD, per-dimension KS/AD): CPU and memory heavy, one
    # run per instance; Cloud Scheduler calls it, so no warm instance.
    detect = { memory = "8Gi", cpu = "2", timeout_seconds = 1800, concurrency = 1, min_instances = 0, max_instances = 3 }
    # One model per message (detection fan-out): at most max_samples rows per window, so a
    # fraction of detect's memory; instances scale with the number of models.
    check = { memory = "4Gi", cpu = "2", timeout_seconds = 540, concurrency = 1, min_instances = 0, max_instances = 50 }
    # Reads are light; rebuild-stats refolds a time range from SQL, hence the long timeout.
    api = { memory = "2Gi", cpu = "1", timeout_seconds = 1800, concurrency = 8, min_instances = 0, max_instances = 5 }
  }

  functions = {
    for name, d in local.function_defaults : name => merge(d, {
      for k, v in lookup(var.function_overrides, name, {}) : k => v if v != null
    })
  }

  trigger_kind = {
    ingest  = "http"
    persist = "pubsub"
    stats   = "pubsub"
    detect  = "http"
    # check: the detect topic (local.subscriber_topic)
    check = "pubsub"
    api   = "http"
  }

  ingress = {
    ingest = var.ingest_ingress
    # Eventarc / Pub/Sub push deliveries are internal traffic.
    persist = "ALLOW_INTERNAL_ONLY"
    stats   = "ALLOW_INTERNAL_ONLY"
    # Pub/Sub deliveries of the detection fan-out.
    check = "ALLOW_INTERNAL_ONLY"
    # Cloud Scheduler and Workflows in the same project count as internal callers.
    detect = "ALLOW_INTERNAL_ONLY"
    api    = var.api_ingress
  }

  # --- environment ------------------------------------------------------------------------
  # Every function builds the same container (bootstrap.container()), so all of them get the
  # storage settings (SQL, Redis, topic); everything else goes only where it is read.
  env_common = {
    DRIFT_MONITOR_ENV        = "production"
    GOOGLE_CLOUD_PROJECT     = var.project_id
    PUBSUB_TOPIC             = google_pubsub_topic.embeddings.name
    INSTANCE_CONNECTION_NAME = google_sql_database_instance.main.connection_name
    DB_NAME                  = google_sql_database.main.name
    DB_USER                  = google_sql_user.app.name
    DB_IAM_AUTH              = "false"
    DB_IP_TYPE               = "private" # the instance has no public address
    STATS_BUCKET_SECONDS     = tostring(var.stats_bucket_seconds)
    STATS_RESERVOIR_SIZE     = tostring(var.stats_reservoir_size)
    # ingest, persist, stats and detect push their metrics there (pushgateway.tf).
    PROMETHEUS_GATEWAY = local.pushgateway_url
    # Empty means "any dimension" (Settings treats blank as unset).
    EMBEDDING_DIMENSION = var.embedding_dimension == null ? "" : tostring(var.embedding_dimension)
  }

  env_ingest = {
    BATCH_SIZE         = tostring(var.batch_size)
    MAX_REQUEST_BYTES  = tostring(var.max_request_bytes)
    MAX_FUTURE_SECONDS = tostring(var.max_future_seconds)
  }

  env_detection = {
    DRIFT_THRESHOLD        = tostring(var.drift_threshold)
    HISTORICAL_WINDOW_DAYS = tostring(var.historical_window_days)
    # expected days between false pages per model (sequential detection's budget)
    FALSE_ALARM_INTERVAL_DAYS = tostring(var.false_alarm_interval_days)
    # where the current window comes from: running statistics (auto/sketch) or SQL
    DETECTION_SOURCE = var.detection_source
    # detect prunes after each scheduled run; api gets it too because Settings checks it
    # against HISTORICAL_WINDOW_DAYS, which api reads.
    BATCH_RETENTION_DAYS   = tostring(var.batch_retention_days)
    ALERT_COOLDOWN_MINUTES = tostring(var.alert_cooldown_minutes)
    PAGERDUTY_EVENTS_URL   = var.pagerduty_events_url
  }

  # Google ID tokens the HTTP functions verify themselves (entrypoints/auth.py): the audiences a
  # token may carry and the service accounts whose tokens get the API or admin role. A token
  # only reaches the code with its signature when the caller puts it in Authorization and passes
  # Cloud Run's invoker check with X-Serverless-Authorization (Cloud Run strips the signature of
  # the token it checks); see docs/deploy.md.
  #
  # The audiences are the function's own URLs in their deterministic forms. The URI Terraform
  # reports (service_config[0].uri, https://NAME-HASH-REGION.a.run.app) cannot be used: a
  # function's environment naming its own attribute is a dependency cycle, and the hash is only
  # known after creation.
  function_audiences = {
    for name in keys(local.function_defaults) : name => join(",", [
      "https://${var.name_prefix}-${name}-${data.google_project.this.number}.${var.region}.run.app",
      "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.name_prefix}-${name}",
    ])
  }
  # IAM members are "serviceAccount:EMAIL"; tokens carry the bare email.
  ingest_token_invokers = [for m in var.ingest_invokers : trimprefix(m, "serviceAccount:") if startswith(m, "serviceAccount:")]
  api_token_invokers    = [for m in var.api_invokers : trimprefix(m, "serviceAccount:") if startswith(m, "serviceAccount:")]

  env_tokens_ingest = {
    GOOGLE_ID_TOKEN_AUDIENCE     = local.function_audiences["ingest"]
    DRIFT_MONITOR_INVOKERS       = join(",", local.ingest_token_invokers)
    DRIFT_MONITOR_ADMIN_INVOKERS = ""
  }
  env_tokens_detect = {
    GOOGLE_ID_TOKEN_AUDIENCE = local.function_audiences["detect"]
    # POST /drift/check needs the API role only (Scheduler's direct trigger and the workflows).
    DRIFT_MONITOR_INVOKERS       = join(",", [google_service_account.scheduler.email, google_service_account.workflows.email])
    DRIFT_MONITOR_ADMIN_INVOKERS = ""
  }
  env_tokens_api = {
    GOOGLE_ID_TOKEN_AUDIENCE = local.function_audiences["api"]
    DRIFT_MONITOR_INVOKERS   = join(",", local.api_token_invokers)
    # The workflows rebuild statistics (backfill) and pin baselines (baseline_refresh): admin.
    DRIFT_MONITOR_ADMIN_INVOKERS = join(",", concat(var.api_admin_token_invokers, [google_service_account.workflows.email]))
  }

  function_env = {
    ingest  = merge(local.env_common, local.env_ingest, local.env_tokens_ingest)
    persist = merge(local.env_common, { GCS_BUCKET = google_storage_bucket.raw_batches.name })
    stats   = local.env_common
    detect  = merge(local.env_common, local.env_detection, local.env_tokens_detect)
    # A Pub/Sub subscriber: no HTTP callers, so no ID-token settings.
    check = merge(local.env_common, local.env_detection)
    api   = merge(local.env_common, local.env_detection, local.env_tokens_api)
  }

  # Secret-backed variables per function: env var name => secret resource key in secrets.tf.
  # Every production container opens Redis (bootstrap.build: the dimension registry lives
  # there), so every function gets REDIS_URL.
  function_secrets = {
    ingest  = { DB_PASSWORD = "db_password", REDIS_URL = "redis_url", DRIFT_MONITOR_API_KEY = "api_key", DRIFT_MONITOR_ADMIN_KEY = "admin_key" }
    persist = { DB_PASSWORD = "db_password", REDIS_URL = "redis_url" }
    stats   = { DB_PASSWORD = "db_password", REDIS_URL = "redis_url" }
    detect  = { DB_PASSWORD = "db_password", REDIS_URL = "redis_url", PAGERDUTY_ROUTING_KEY = "pagerduty_routing_key", DRIFT_MONITOR_API_KEY = "api_key", DRIFT_MONITOR_ADMIN_KEY = "admin_key" }
    check   = { DB_PASSWORD = "db_password", REDIS_URL = "redis_url", PAGERDUTY_ROUTING_KEY = "pagerduty_routing_key" }
    api     = { DB_PASSWORD = "db_password", REDIS_URL = "redis_url", PAGERDUTY_ROUTING_KEY = "pagerduty_routing_key", DRIFT_MONITOR_API_KEY = "api_key", DRIFT_MONITOR_ADMIN_KEY = "admin_key" }
  }

  # Functions that talk to Redis mount its server CA (in-transit encryption) as a file.
  redis_ca_mount = "/secrets/redis-ca"
  uses_redis     = toset([for name, s in local.function_secrets : name if contains(keys(s), "REDIS_URL")])
}

# Source archives, named by content hash so a changed archive redeploys the function.
resource "google_storage_bucket_object" "source" {
  for_each = local.functions

  bucket = google_storage_bucket.function_source.name
  name   = "functions/${each.key}-${filemd5("${var.function_source_dir}/${each.key}.zip")}.zip"
  source = "${var.function_source_dir}/${each.key}.zip"
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:Only ingest and api default to ALLOW_ALL (producers and operators outside the VPC); none of the functions has an allUsers invoker, so every request still needs an ID token with roles/run.invoker. persist, stats, detect and check are ALLOW_INTERNAL_ONLY.
  for_each = local.functions

  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = "embedding drift monitor: ${each.key}"
  labels      = merge(var.labels, { function = each.key })

  build_config {
    runtime         = var.python_runtime
    entry_point     = each.key
    service_account = google_service_account.builder.id
    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_seconds
    max_instance_request_concurrency = each.value.concurrency
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    service_account_email            = google_service_account.fn[each.key].email
    ingress_settings                 = local.ingress[each.key]
    # false keeps the traffic split when a new revision deploys, so the staged rollout in
    # cloudbuild.yaml can give it a canary share first (the pipeline pins traffic to the serving
    # revision by name before applying). Plain `terraform apply` sends new revisions 100%.
    all_traffic_on_latest_revision = !var.staged_rollout
    vpc_connector                  = google_vpc_access_connector.main.id
    # With the internal-only Pushgateway (pushgateway.tf) all egress goes through the
    # connector, so Cloud Run counts the pushes as internal traffic; Cloud NAT carries the rest
    # (PagerDuty, webhooks). Without it only private ranges (Cloud SQL, Redis) need the VPC.
    vpc_connector_egress_settings = var.deploy_pushgateway ? "ALL_TRAFFIC" : "PRIVATE_RANGES_ONLY"

    environment_variables = local.function_env[each.key]

    dynamic "secret_environment_variables" {
      for_each = local.function_secrets[each.key]
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }

    dynamic "secret_volumes" {
      for_each = contains(local.uses_redis, each.key) ? [1] : []
      content {
        mount_path = local.redis_ca_mount
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret["redis_ca"].secret_id
        versions {
          version = "latest"
          path    = "ca.pem"
        }
      }
    }
  }

  # Subscribers: an Eventarc Pub/Sub trigger unless Terraform-owned push subscriptions deliver.
  dynamic "event_trigger" {
    for_each = local.trigger_kind[each.key] == "pubsub" && var.subscriber_transport == "eventarc" ? [1] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = local.subscriber_topic[each.key]
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.events.email
    }
  }

  lifecycle {
    precondition {
      # Settings.from_env refuses a shorter retention: rolling baselines would lose their data.
      condition     = var.batch_retention_days == 0 || var.batch_retention_days >= var.historical_window_days + 1
      error_message = "batch_retention_days must be 0 or at least historical_window_days + 1."
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_version.generated,
    google_secret_manager_secret_version.pagerduty,
    google_secret_manager_secret_iam_member.accessor,
    # Eventarc's service agent must exist before the first trigger is created.
    google_project_service_identity.eventarc,
    google_project_iam_member.builder,
  ]
}
