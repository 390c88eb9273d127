# The Prometheus Pushgateway the functions push their metrics to, and its collection by Google
# Cloud Managed Service for Prometheus (docs/metrics.md, "Metrics in Google Cloud").
#
# * The official prom/pushgateway image, pinned to one release (var.pushgateway_image), as a
#   Cloud Run service with exactly one instance: the gateway's state is in memory, two
#   instances would each hold half the groups.
# * Ingress internal only; the run.invoker role is granted to the four functions that push
#   (ingest, persist, stats, detect) and to nobody else. They send a Google ID token for the
#   service URL (adapters/metrics.py) and reach it through the VPC connector (functions.tf
#   routes all egress through the VPC so Cloud Run counts their calls as internal; Cloud NAT
#   below keeps PagerDuty and webhooks reachable).
# * Persistence: --persistence.file on a Cloud Storage volume, written every minute, read back
#   at start, so a restart or a new revision loses at most a minute of pushes.
# * Collection: the Cloud Run Managed Prometheus sidecar scrapes the gateway on localhost every
#   30 s (RunMonitoring config from Secret Manager) and writes to Cloud Monitoring, where the
#   dashboard and the PromQL alert of monitoring.tf read it.

locals {
  pushgateway_port    = 9091
  pushgateway_pushers = ["ingest", "persist", "stats", "detect"]
  pushgateway_url     = var.deploy_pushgateway ? google_cloud_run_v2_service.pushgateway[0].uri : var.prometheus_gateway_url
  rungmp_config = yamlencode({
    apiVersion = "monitoring.googleapis.com/v1beta"
    kind       = "RunMonitoring"
    metadata   = { name = "pushgateway" }
    spec = {
      endpoints = [{ port = tostring(local.pushgateway_port), path = "/metrics", interval = "30s" }]
    }
  })
}

resource "google_service_account" "pushgateway" {
  account_id   = "${var.name_prefix}-pushgateway"
  display_name = "drift monitor Pushgateway (Cloud Run) and its Managed Prometheus sidecar"
}

resource "google_storage_bucket" "pushgateway" {
  count = var.deploy_pushgateway ? 1 : 0

  name                        = "${var.project_id}-${var.name_prefix}-pushgateway"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = var.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 5
    }
    action {
      type = "Delete"
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }
}

resource "google_storage_bucket_iam_member" "pushgateway_state" {
  count = var.deploy_pushgateway ? 1 : 0

  bucket = google_storage_bucket.pushgateway[0].name
  role   = "roles/storage.objectUser"
  member = google_service_account.pushgateway.member
}

resource "google_project_iam_member" "pushgateway_metric_writer" {
  count = var.deploy_pushgateway ? 1 : 0

  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = google_service_account.pushgateway.member
}

resource "google_secret_manager_secret" "rungmp_config" {
  count = var.deploy_pushgateway ? 1 : 0

  secret_id = "${var.name_prefix}-pushgateway-rungmp"
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "rungmp_config" {
  count = var.deploy_pushgateway ? 1 : 0

  secret      = google_secret_manager_secret.rungmp_config[0].id
  secret_data = local.rungmp_config
}

resource "google_secret_manager_secret_iam_member" "rungmp_config" {
  count = var.deploy_pushgateway ? 1 : 0

  secret_id = google_secret_manager_secret.rungmp_config[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.pushgateway.member
}

resource "google_cloud_run_v2_service" "pushgateway" {
  count = var.deploy_pushgateway ? 1 : 0

  name                = "${var.name_prefix}-pushgateway"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = false
  labels              = var.labels

  template {
    service_account                  = google_service_account.pushgateway.email
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = 1
      max_instance_count = 1
    }

    containers {
      name  = "pushgateway"
      image = var.pushgateway_image
      args = [
        "--web.listen-address=:${local.pushgateway_port}",
        "--persistence.file=/data/pushgateway.data",
        "--persistence.interval=1m",
      ]

      ports {
        container_port = local.pushgateway_port
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = false # the persistence timer and the sidecar's scrapes run between requests
      }

      volume_mounts {
        name       = "state"
        mount_path = "/data"
      }

      startup_probe {
        http_get {
          path = "/-/ready"
          port = local.pushgateway_port
        }
      }
    }

    containers {
      name       = "collector"
      image      = var.rungmp_sidecar_image
      depends_on = ["pushgateway"]

      volume_mounts {
        name       = "rungmp-config"
        mount_path = "/etc/rungmp"
      }
    }

    volumes {
      name = "state"
      gcs {
        bucket    = google_storage_bucket.pushgateway[0].name
        read_only = false
      }
    }

    volumes {
      name = "rungmp-config"
      secret {
        secret = google_secret_manager_secret.rungmp_config[0].secret_id
        items {
          version = "latest"
          path    = "config.yaml"
        }
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_storage_bucket_iam_member.pushgateway_state,
    google_secret_manager_secret_iam_member.rungmp_config,
    google_secret_manager_secret_version.rungmp_config,
  ]
}

# Only the functions that push may call it.
resource "google_cloud_run_v2_service_iam_member" "pushgateway_invoker" {
  for_each = var.deploy_pushgateway ? toset(local.pushgateway_pushers) : toset([])

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.pushgateway[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.fn[each.key].member
}

# With all function egress through the VPC (for the internal-only gateway), Cloud NAT gives the
# connector's traffic to the internet (PagerDuty, webhooks) a way out.
resource "google_compute_router" "main" {
  name    = "${var.name_prefix}-router"
  region  = var.region
  network = google_compute_network.main.id
}

resource "google_compute_router_nat" "main" {
  name                               = "${var.name_prefix}-nat"
  router                             = google_compute_router.main.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}
