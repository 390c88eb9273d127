# Batches flow ingest -> topic -> (persist, stats). Messages a subscriber cannot process end in
# the dead-letter topic: malformed ones are published there by the subscriber code itself
# (drift_monitor.adapters.pubsub.DEAD_LETTER_TOPIC), and ones that keep failing are moved there
# by Pub/Sub after max_delivery_attempts.

locals {
  # Must equal drift_monitor.adapters.pubsub.DEAD_LETTER_TOPIC / *_SUBSCRIPTION (a test checks).
  dead_letter_topic = "${var.pubsub_topic}-dead-letter"
  subscribers = {
    persist = "${var.pubsub_topic}-persist"
    stats   = "${var.pubsub_topic}-stats"
    check   = "${var.pubsub_topic}-check"
  }
  # Must equal entrypoints.detect_fanout.detect_topic() (a test checks).
  detect_topic = "${var.pubsub_topic}-detect"
  # The topic each subscriber function consumes.
  subscriber_topic = {
    persist = google_pubsub_topic.embeddings.id
    stats   = google_pubsub_topic.embeddings.id
    check   = google_pubsub_topic.detect.id
  }
}

resource "google_pubsub_topic" "embeddings" {
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys; messages are transient (7-day retention) and the durable copy lives in Cloud SQL / GCS. Add kms_key_name where policy demands CMEK.
  name   = var.pubsub_topic
  labels = var.labels

  # Keep published batches for replay (seek) after a subscriber bug, independent of acks.
  message_retention_duration = var.message_retention

  depends_on = [google_project_service.apis]
}

# Detection fan-out: the scheduled tick (detect, POST /drift/check?fanout=true) publishes one
# request per model; the check function checks one model per message.
resource "google_pubsub_topic" "detect" {
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys; requests are transient and carry only a model id and a time.
  name   = local.detect_topic
  labels = var.labels

  message_retention_duration = var.message_retention

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "detect_publisher" {
  topic  = google_pubsub_topic.detect.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.fn["detect"].member
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Encrypted at rest with Google-managed keys; messages are transient (7-day retention) and the durable copy lives in Cloud SQL / GCS. Add kms_key_name where policy demands CMEK.
  name                       = local.dead_letter_topic
  labels                     = var.labels
  message_retention_duration = var.message_retention

  depends_on = [google_project_service.apis]
}

# A topic without subscriptions drops what is published to it: hold dead letters for inspection
# and replay (`gcloud pubsub subscriptions pull embeddings-dead-letter`).
resource "google_pubsub_subscription" "dead_letter_hold" {
  name   = local.dead_letter_topic
  topic  = google_pubsub_topic.dead_letter.id
  labels = var.labels

  message_retention_duration = var.message_retention
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = "" # never expires
  }
}

# Pub/Sub's service agent must be able to publish to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "dead_letter_agent_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

# ---------------------------------------------------------------------------------------------
# subscriber_transport = "push": Terraform-owned push subscriptions with the dead-letter policy.
# ---------------------------------------------------------------------------------------------
resource "google_pubsub_subscription" "subscriber" {
  for_each = var.subscriber_transport == "push" ? local.subscribers : {}

  name   = each.value
  topic  = local.subscriber_topic[each.key]
  labels = var.labels

  # Longer than the function timeout, so a slow but successful delivery is not redelivered.
  ack_deadline_seconds       = 600
  message_retention_duration = var.message_retention

  push_config {
    push_endpoint = google_cloudfunctions2_function.fn[each.key].service_config[0].uri
    oidc_token {
      service_account_email = google_service_account.events.email
      audience              = google_cloudfunctions2_function.fn[each.key].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_agent_publisher]
}

resource "google_pubsub_subscription_iam_member" "subscriber_agent" {
  for_each = google_pubsub_subscription.subscriber

  subscription = each.value.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# ---------------------------------------------------------------------------------------------
# subscriber_transport = "eventarc": Eventarc creates the subscription of each trigger, and the
# provider exposes no argument for its dead-letter policy, so attach it after the function is
# deployed. Re-runs whenever the trigger (and so its subscription) is replaced.
# ---------------------------------------------------------------------------------------------
resource "terraform_data" "eventarc_dead_letter" {
  for_each = var.subscriber_transport == "eventarc" ? local.subscribers : {}

  triggers_replace = [
    google_cloudfunctions2_function.fn[each.key].event_trigger[0].trigger,
    google_pubsub_topic.dead_letter.id,
    var.max_delivery_attempts,
    var.message_retention,
  ]

  provisioner "local-exec" {
    interpreter = ["/bin/bash", "-euo", "pipefail", "-c"]
    command     = <<-EOT
      sub="$(gcloud eventarc triggers describe "$TRIGGER" --location="$REGION" --project="$PROJECT" \
        --format='value(transport.pubsub.subscription)')"
      gcloud pubsub subscriptions update "$sub" --project="$PROJECT" \
        --dead-letter-topic="$DLQ" --max-delivery-attempts="$ATTEMPTS" \
        --message-retention-duration="$RETENTION" \
        --min-retry-delay=10s --max-retry-delay=600s
      gcloud pubsub subscriptions add-iam-policy-binding "$sub" --project="$PROJECT" \
        --member="$AGENT" --role=roles/pubsub.subscriber >/dev/null
    EOT
    environment = {
      TRIGGER   = google_cloudfunctions2_function.fn[each.key].event_trigger[0].trigger
      REGION    = var.region
      PROJECT   = var.project_id
      DLQ       = google_pubsub_topic.dead_letter.id
      ATTEMPTS  = tostring(var.max_delivery_attempts)
      RETENTION = var.message_retention
      AGENT     = local.pubsub_service_agent
    }
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_agent_publisher]
}
