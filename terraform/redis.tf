# Memorystore for Redis holds the running statistics (time-bucketed sketches). They can always be
# rebuilt from Cloud SQL (workflows/backfill.yaml), so RDB snapshots are a convenience for fast
# recovery, not the source of truth.

resource "google_redis_instance" "stats" {
  name           = "${var.name_prefix}-stats"
  display_name   = "drift monitor running statistics"
  tier           = var.redis_tier
  memory_size_gb = var.redis_memory_gb
  region         = var.region
  redis_version  = "REDIS_7_2"
  labels         = var.labels

  authorized_network = google_compute_network.main.id
  connect_mode       = "PRIVATE_SERVICE_ACCESS"

  # AUTH string + TLS with server authentication (port 6378; clients verify the server CA).
  auth_enabled            = true
  transit_encryption_mode = "SERVER_AUTHENTICATION"

  persistence_config {
    persistence_mode    = "RDB"
    rdb_snapshot_period = "SIX_HOURS"
  }

  # Sketch keys are written on every batch and must not be evicted silently.
  redis_configs = {
    maxmemory-policy = "noeviction"
  }

  maintenance_policy {
    weekly_maintenance_window {
      day = "SUNDAY"
      start_time {
        hours   = 4
        minutes = 0
      }
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}
