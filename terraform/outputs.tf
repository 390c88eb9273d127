output "function_urls" {
  description = "HTTPS URL of each function (none is public: callers need roles/run.invoker)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.service_config[0].uri }
}

output "function_services" {
  description = "Cloud Run service behind each function (used by the staged rollout)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.name }
}

output "service_accounts" {
  description = "Runtime service account of each function and of the callers."
  value = merge(
    { for k, sa in google_service_account.fn : k => sa.email },
    {
      events    = google_service_account.events.email
      scheduler = google_service_account.scheduler.email
      workflows = google_service_account.workflows.email
    },
  )
}

output "pubsub_topic" {
  value = google_pubsub_topic.embeddings.id
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letter.id
}

output "sql_instance_connection_name" {
  value = google_sql_database_instance.main.connection_name
}

output "redis_host" {
  value = "${google_redis_instance.stats.host}:${google_redis_instance.stats.port}"
}

output "raw_batch_bucket" {
  value = google_storage_bucket.raw_batches.name
}

output "secret_ids" {
  description = "Secret Manager ids; read a key with: gcloud secrets versions access latest --secret=ID"
  value       = { for k, s in google_secret_manager_secret.secret : k => s.secret_id }
}

output "workflows" {
  value = { for k, w in google_workflows_workflow.job : k => w.name }
}

output "scheduler_job" {
  value = google_cloud_scheduler_job.detect.name
}
