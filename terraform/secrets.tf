# Secret Manager holds everything a function must not see in plain environment: the database
# password, the Redis AUTH URL, the PagerDuty routing key and the two API keys. Each function's
# service account can read only the secrets listed for it in functions.tf (local.function_secrets).
#
# Values Terraform generates (passwords, keys, the Redis URL) are also in the Terraform state:
# keep the state bucket private to the deployers (see README.md).

locals {
  secrets = {
    db_password           = "${var.name_prefix}-db-password"
    redis_url             = "${var.name_prefix}-redis-url"
    redis_ca              = "${var.name_prefix}-redis-ca"
    pagerduty_routing_key = "${var.name_prefix}-pagerduty-routing-key"
    api_key               = "${var.name_prefix}-api-key"
    admin_key             = "${var.name_prefix}-admin-key"
  }

  generated_secret_values = {
    db_password = random_password.db.result
    # rediss:// = TLS (transit_encryption_mode SERVER_AUTHENTICATION); the CA file is mounted from
    # the redis_ca secret; redis-py passes ssl_ca_certs from the URL to the connection.
    redis_url = format(
      "rediss://:%s@%s:%d/0?ssl_ca_certs=%s",
      google_redis_instance.stats.auth_string,
      google_redis_instance.stats.host,
      google_redis_instance.stats.port,
      "${local.redis_ca_mount}/ca.pem",
    )
    redis_ca  = join("\n", [for c in google_redis_instance.stats.server_ca_certs : c.cert])
    api_key   = random_password.api_key.result
    admin_key = random_password.admin_key.result
  }

  # Which function reads which secret, flattened for the IAM bindings.
  secret_readers = merge([
    for fn, vars in local.function_secrets : merge(
      { for env, key in vars : "${fn}/${key}" => { function = fn, secret = key } },
      contains(local.uses_redis, fn) ? { "${fn}/redis_ca" = { function = fn, secret = "redis_ca" } } : {},
    )
  ]...)
}

resource "random_password" "db" {
  length  = 32
  special = false # goes into a SQLAlchemy URL in local tooling; keep it URL-safe
}

resource "random_password" "api_key" {
  length  = 40
  special = false
}

resource "random_password" "admin_key" {
  length  = 40
  special = false
}

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = each.value
  labels    = var.labels

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "generated" {
  for_each = local.generated_secret_values

  secret      = google_secret_manager_secret.secret[each.key].id
  secret_data = each.value
}

# The routing key comes from the operator. With var.pagerduty_routing_key = null, add the version
# yourself before the functions deploy:
#   printf %s "$KEY" | gcloud secrets versions add drift-pagerduty-routing-key --data-file=-
resource "google_secret_manager_secret_version" "pagerduty" {
  count = var.pagerduty_routing_key == null ? 0 : 1

  secret      = google_secret_manager_secret.secret["pagerduty_routing_key"].id
  secret_data = var.pagerduty_routing_key
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_readers

  secret_id = google_secret_manager_secret.secret[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.value.function].member
}
