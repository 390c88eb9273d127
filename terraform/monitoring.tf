# "Detection has not run" alerting and the drift dashboard.
#
# The primary signal needs nothing from the application: Cloud Run writes a request log entry for
# every call of the detect function, so a log-based metric counts successful POST /drift/check*
# responses, and an absence condition fires when none arrived for detection_stale_after_seconds.
# Optionally a second policy reads the last-success gauge the detect function pushes to the
# Pushgateway, when that gateway is scraped by Managed Service for Prometheus.

locals {
  detect_service = google_cloudfunctions2_function.fn["detect"].name
  metric_names = {
    drift_score  = "drift_monitor_drift_score"
    last_success = "drift_monitor_last_success_timestamp_seconds"
  }
}

resource "google_logging_metric" "detection_runs" {
  name        = "${var.name_prefix}/detection_runs"
  description = "Successful (2xx) POST /drift/check calls answered by the detect function."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.detect_service}\"",
    "log_name=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\"",
    "httpRequest.requestMethod=\"POST\"",
    "httpRequest.requestUrl=~\"/drift/check\"",
    "httpRequest.status>=200",
    "httpRequest.status<300",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "drift detection runs"
  }
}

resource "google_logging_metric" "detection_failures" {
  name        = "${var.name_prefix}/detection_failures"
  description = "POST /drift/check calls of the detect function that answered 5xx."
  filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${local.detect_service}\"",
    "log_name=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\"",
    "httpRequest.requestUrl=~\"/drift/check\"",
    "httpRequest.status>=500",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "drift detection failures"
  }
}

resource "google_monitoring_alert_policy" "detection_stale" {
  display_name          = "Drift detection has not run"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "no successful POST /drift/check for ${var.detection_stale_after_seconds}s"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.detection_runs.name}\" AND resource.type=\"cloud_run_revision\""
      duration = "${var.detection_stale_after_seconds}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      No successful drift check was logged by `${local.detect_service}` for ${var.detection_stale_after_seconds} s.
      Check the Cloud Scheduler job `${google_cloud_scheduler_job.detect.name}` (last attempt and
      its status), the detect function's logs, and Cloud SQL / Memorystore health. Drift is not
      being watched while this is open. See docs/deploy.md#operations.
    EOT
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

resource "google_monitoring_alert_policy" "detection_failing" {
  display_name          = "Drift detection is failing"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "detect answered 5xx"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.detection_failures.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The detect function answered 5xx to a drift check in the last hour. Its logs carry the model id and the exception."
  }
}

resource "google_monitoring_alert_policy" "detection_stale_prometheus" {
  count = var.enable_managed_prometheus_alert ? 1 : 0

  display_name          = "Drift detection has not succeeded (Managed Prometheus)"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = var.labels

  conditions {
    display_name = "last successful detection older than ${var.detection_stale_after_seconds}s"
    condition_prometheus_query_language {
      query               = "time() - max by (model_id) (${local.metric_names.last_success}) > ${var.detection_stale_after_seconds}"
      duration            = "300s"
      evaluation_interval = "60s"
      alert_rule          = "DriftDetectionStale"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The detect function's last-success gauge (`${local.metric_names.last_success}`, pushed to the Pushgateway) is older than ${var.detection_stale_after_seconds} s."
  }
}

resource "google_monitoring_dashboard" "drift" {
  dashboard_json = templatefile("${path.module}/dashboards/drift.json.tftpl", {
    runs_metric     = "logging.googleapis.com/user/${google_logging_metric.detection_runs.name}"
    failures_metric = "logging.googleapis.com/user/${google_logging_metric.detection_failures.name}"
    drift_score     = local.metric_names.drift_score
    last_success    = local.metric_names.last_success
    detect_service  = local.detect_service
    ingest_service  = google_cloudfunctions2_function.fn["ingest"].name
  })
}
