# Two buckets: raw batches (archived by the persist function, deleted after a retention period)
# and the function source archives Terraform uploads.

resource "google_storage_bucket" "raw_batches" {
  name     = "${var.project_id}-${var.name_prefix}-raw-batches"
  location = var.storage_location
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  # Archive writes are keyed by batch id#part, so a redelivered message overwrites an identical
  # object; versioning keeps an accidental overwrite or delete recoverable for a short while.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.raw_batch_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # Old versions live a week, then go.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Cheaper storage once batches are past the detection windows.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }
}

resource "google_storage_bucket" "function_source" {
  name     = "${var.project_id}-${var.name_prefix}-function-source"
  location = var.region
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }
}

resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink itself; logging it into itself would loop.
  name     = "${var.project_id}-${var.name_prefix}-access-logs"
  location = var.storage_location
  labels   = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}
