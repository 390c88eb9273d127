# ---------------------------------------------------------------------------------------------
# Project and naming
# ---------------------------------------------------------------------------------------------
variable "project_id" {
  description = "GCP project that hosts the monitor."
  type        = string
}

variable "region" {
  description = "Region for every regional resource (functions, Cloud SQL, Redis, connector, scheduler)."
  type        = string
  default     = "europe-west1"
}

variable "name_prefix" {
  description = "Prefix for resource names, so two deployments can share a project."
  type        = string
  default     = "drift"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,11}$", var.name_prefix))
    error_message = "name_prefix must be 1-12 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = { app = "embedding-drift-monitor" }
}

# ---------------------------------------------------------------------------------------------
# Function source and runtime
# ---------------------------------------------------------------------------------------------
variable "function_source_dir" {
  description = "Directory holding the archives built by scripts/package_functions.py (one <function>.zip each)."
  type        = string
  default     = "../build/functions"
}

variable "python_runtime" {
  description = "Cloud Functions runtime."
  type        = string
  default     = "python312"
  validation {
    condition     = contains(["python311", "python312"], var.python_runtime)
    error_message = "python_runtime must be python311 or python312."
  }
}

variable "function_overrides" {
  description = "Per-function sizing overrides keyed by function name (ingest, persist, stats, detect, api); any omitted field keeps the default in functions.tf."
  type = map(object({
    memory          = optional(string)
    cpu             = optional(string)
    timeout_seconds = optional(number)
    concurrency     = optional(number)
    min_instances   = optional(number)
    max_instances   = optional(number)
  }))
  default = {}
}

# ---------------------------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------------------------
variable "pubsub_topic" {
  description = "Topic the ingest function publishes batches to (PUBSUB_TOPIC). The dead-letter topic is <topic>-dead-letter."
  type        = string
  default     = "embeddings"
}

variable "message_retention" {
  description = "How long the topic and subscriptions keep messages, so a subscriber outage can be replayed."
  type        = string
  default     = "604800s"
}

variable "max_delivery_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the dead-letter topic (5-100)."
  type        = number
  default     = 10
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "subscriber_transport" {
  description = <<-EOT
    How batches reach the persist and stats functions.
    "eventarc": each function has an Eventarc Pub/Sub trigger (Eventarc creates the subscription);
    Terraform then attaches the dead-letter policy to that subscription with gcloud (needs gcloud
    where Terraform runs, as in Cloud Build).
    "push": Terraform owns named push subscriptions (<topic>-persist, <topic>-stats) with
    dead-letter and retry policies, pushing with an OIDC token to the functions' URLs.
  EOT
  type        = string
  default     = "eventarc"
  validation {
    condition     = contains(["eventarc", "push"], var.subscriber_transport)
    error_message = "subscriber_transport must be eventarc or push."
  }
}

# ---------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------
variable "subnet_cidr" {
  description = "Primary range of the monitor's subnet."
  type        = string
  default     = "10.10.0.0/24"
}

variable "connector_cidr" {
  description = "/28 range for the Serverless VPC Access connector."
  type        = string
  default     = "10.10.8.0/28"
}

variable "private_service_prefix_length" {
  description = "Size of the range reserved for private services access (Cloud SQL, Memorystore)."
  type        = number
  default     = 20
}

# ---------------------------------------------------------------------------------------------
# Cloud SQL
# ---------------------------------------------------------------------------------------------
variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "db_availability_type" {
  description = "REGIONAL (HA, failover replica) or ZONAL."
  type        = string
  default     = "REGIONAL"
}

variable "db_disk_size_gb" {
  description = "Initial disk size; autoresize grows it."
  type        = number
  default     = 50
}

variable "db_name" {
  description = "Database name (DB_NAME)."
  type        = string
  default     = "drift_monitor"
}

variable "db_user" {
  description = "Built-in database user the functions connect as (DB_USER); its password lives in Secret Manager."
  type        = string
  default     = "drift_monitor"
}

variable "db_backup_retained_count" {
  description = "Automated daily backups kept."
  type        = number
  default     = 14
}

variable "db_log_retention_days" {
  description = "Days of write-ahead log kept for point-in-time recovery (1-7)."
  type        = number
  default     = 7
}

variable "deletion_protection" {
  description = "Protect Cloud SQL (and the raw-batch bucket, via force_destroy=false) from terraform destroy."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------
# Memorystore
# ---------------------------------------------------------------------------------------------
variable "redis_tier" {
  description = "STANDARD_HA (replica + automatic failover) or BASIC (single node, for test projects)."
  type        = string
  default     = "STANDARD_HA"
  validation {
    condition     = contains(["STANDARD_HA", "BASIC"], var.redis_tier)
    error_message = "redis_tier must be STANDARD_HA or BASIC."
  }
}

variable "redis_memory_gb" {
  description = "Memorystore capacity."
  type        = number
  default     = 5
}

# ---------------------------------------------------------------------------------------------
# Detection, alerting, metrics
# ---------------------------------------------------------------------------------------------
variable "detection_schedule" {
  description = "Cron schedule of the drift check (Cloud Scheduler syntax)."
  type        = string
  default     = "*/30 * * * *"
}

variable "detection_time_zone" {
  description = "Time zone of detection_schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "detection_stale_after_seconds" {
  description = "Alert when no successful detection run was seen for this long (at least two schedule periods)."
  type        = number
  default     = 5400
}

variable "drift_threshold" {
  description = "DRIFT_THRESHOLD: default decision threshold (per-model config overrides it)."
  type        = number
  default     = 0.15
}

variable "historical_window_days" {
  description = "HISTORICAL_WINDOW_DAYS: baseline window when no baseline is pinned."
  type        = number
  default     = 7
}

variable "false_alarm_interval_days" {
  description = "FALSE_ALARM_INTERVAL_DAYS: expected days between false pages per model on stationary traffic (per-model config overrides it)."
  type        = number
  default     = 365
  validation {
    condition     = var.false_alarm_interval_days >= 1 && var.false_alarm_interval_days <= 36500
    error_message = "false_alarm_interval_days must be between 1 and 36500."
  }
}

variable "detection_source" {
  description = "DETECTION_SOURCE: where detection reads the current window and the vectors to score: auto (the Memorystore running statistics, SQL for a run they cannot serve), sketch or sql."
  type        = string
  default     = "auto"
  validation {
    condition     = contains(["auto", "sketch", "sql"], var.detection_source)
    error_message = "detection_source must be auto, sketch or sql."
  }
}

variable "batch_retention_days" {
  description = "BATCH_RETENTION_DAYS: stored batches older than this many days are deleted after each scheduled detection run (0 keeps them forever). Must be at least historical_window_days + 1; baseline windows are always kept."
  type        = number
  default     = 30
  validation {
    # The cross-check with historical_window_days is a precondition in functions.tf (variable
    # validations may name other variables only from Terraform 1.9 on).
    condition     = var.batch_retention_days == floor(var.batch_retention_days) && (var.batch_retention_days == 0 || (var.batch_retention_days >= 2 && var.batch_retention_days <= 36500))
    error_message = "batch_retention_days must be 0 (keep forever) or a whole number of days from 2 to 36500."
  }
}

variable "alert_cooldown_minutes" {
  description = "ALERT_COOLDOWN_MINUTES: minimum gap between two pages for the same model."
  type        = number
  default     = 30
}

variable "stats_bucket_seconds" {
  description = "STATS_BUCKET_SECONDS: width of one running-statistics time bucket in Redis."
  type        = number
  default     = 3600
}

variable "stats_reservoir_size" {
  description = "STATS_RESERVOIR_SIZE: rows in each running-statistics bucket's sample (16-8192): what detection tests and scores per bucket; memory per bucket grows by 4 x dimension bytes per row."
  type        = number
  default     = 128
  validation {
    condition     = var.stats_reservoir_size >= 16 && var.stats_reservoir_size <= 8192
    error_message = "stats_reservoir_size must be between 16 and 8192."
  }
}

variable "embedding_dimension" {
  description = "EMBEDDING_DIMENSION: dimension every batch must have; null accepts any dimension (fixed per model on first batch)."
  type        = number
  default     = null
}

variable "batch_size" {
  description = "BATCH_SIZE: most vectors in one POST /embeddings/batch."
  type        = number
  default     = 10000
}

variable "max_request_bytes" {
  description = "MAX_REQUEST_BYTES: largest accepted request body."
  type        = number
  default     = 33554432
}

variable "max_future_seconds" {
  description = "MAX_FUTURE_SECONDS: how far in the future a batch timestamp may be."
  type        = number
  default     = 300
}

variable "prometheus_gateway_url" {
  description = "PROMETHEUS_GATEWAY when deploy_pushgateway is false: a Pushgateway URL reachable from the VPC (empty disables the push)."
  type        = string
  default     = ""
}

variable "deploy_pushgateway" {
  description = "Deploy the Pushgateway on Cloud Run (pushgateway.tf) with Managed Prometheus collection, and point the functions' PROMETHEUS_GATEWAY at it."
  type        = bool
  default     = true
}

variable "pushgateway_image" {
  description = "The Pushgateway container: the official image, pinned to one release (pin a digest, @sha256:..., for stricter supply-chain control)."
  type        = string
  default     = "docker.io/prom/pushgateway:v1.11.0"
  validation {
    condition     = can(regex("^(docker\\.io/)?prom/pushgateway(:v[0-9]+\\.[0-9]+\\.[0-9]+(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$", var.pushgateway_image))
    error_message = "Use prom/pushgateway pinned to a release tag (:vX.Y.Z) and/or a digest, never latest."
  }
}

variable "rungmp_sidecar_image" {
  description = "Google's Cloud Run Managed Prometheus sidecar, pinned to one release."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
}

variable "pagerduty_events_url" {
  description = "PAGERDUTY_EVENTS_URL: Events API v2 endpoint."
  type        = string
  default     = "https://events.pagerduty.com/v2/enqueue"
}

variable "pagerduty_routing_key" {
  description = "PagerDuty Events v2 routing (integration) key; stored in Secret Manager. Leave null to add the secret version yourself (gcloud secrets versions add) before the functions deploy."
  type        = string
  default     = null
  sensitive   = true
  validation {
    # drift_monitor.adapters.pagerduty refuses anything else at start-up.
    condition     = var.pagerduty_routing_key == null || length(trimspace(coalesce(var.pagerduty_routing_key, "x"))) == 32
    error_message = "A PagerDuty Events v2 routing key has 32 characters."
  }
}

variable "enable_managed_prometheus_alert" {
  description = "Also alert on the Managed Prometheus last-success gauge (needs the Pushgateway scraped by Managed Prometheus)."
  type        = bool
  default     = false
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids for the monitoring alert policies."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------
variable "ingest_invokers" {
  description = "IAM members allowed to call the ingest function, e.g. [\"serviceAccount:inference@p.iam.gserviceaccount.com\"]."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.ingest_invokers : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The ingest function must not be public."
  }
}

variable "api_invokers" {
  description = "IAM members allowed to call the operator API, e.g. [\"group:ml-oncall@example.com\"]."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.api_invokers : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The operator API must not be public."
  }
}

variable "api_admin_token_invokers" {
  description = "Service-account emails whose Google ID tokens get the admin role on the operator API (DRIFT_MONITOR_ADMIN_INVOKERS); they are also granted roles/run.invoker on it. Service accounts in api_invokers get the API role."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for e in var.api_admin_token_invokers : can(regex("^[^@:\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "List bare emails such as ops@project.iam.gserviceaccount.com (no serviceAccount: prefix)."
  }
}

variable "ingest_ingress" {
  description = "Ingress of the ingest function: ALLOW_ALL (IAM still required) or ALLOW_INTERNAL_ONLY when every producer runs in this project/VPC."
  type        = string
  default     = "ALLOW_ALL"
}

variable "api_ingress" {
  description = "Ingress of the operator API function."
  type        = string
  default     = "ALLOW_ALL"
}

# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------
variable "raw_batch_retention_days" {
  description = "Raw batches in Cloud Storage are deleted after this many days."
  type        = number
  default     = 90
}

variable "storage_location" {
  description = "Location of the buckets (region or multi-region)."
  type        = string
  default     = "EU"
}

variable "deployer_member" {
  description = "IAM member that runs terraform apply / the rollout (e.g. the Cloud Build service account); gets actAs on the runtime accounts only. Null skips the grant."
  type        = string
  default     = null
}

variable "detection_trigger" {
  description = "How Cloud Scheduler starts detection: \"workflow\" (scheduled_detection workflow: its ID token in X-Serverless-Authorization for the invoker check and in Authorization for the app) or \"direct\" (POST /drift/check with the scheduler account's OIDC token only, which Cloud Run's invoker check consumes: the app then sees the token without its signature and refuses it while keys or invoker lists are configured). See scheduler.tf."
  type        = string
  default     = "workflow"
  validation {
    condition     = contains(["workflow", "direct"], var.detection_trigger)
    error_message = "detection_trigger must be workflow or direct."
  }
}

variable "detection_fanout" {
  description = "Scheduled detection fans out: the tick publishes one request per model to the detect topic and the check function checks each (many models in parallel, each at most once per 5-minute slot). false: the detect function checks every model in turn within its time budget (tens of models)."
  type        = bool
  default     = true
}

variable "staged_rollout" {
  description = "Set by the Cloud Build pipeline: new function revisions start without traffic and the pipeline shifts it (canary, smoke test, promote or roll back). Leave false for a plain apply."
  type        = bool
  default     = false
}
