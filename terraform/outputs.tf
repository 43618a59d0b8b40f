output "topics" {
  description = "Pub/Sub topic ids (publish post events and top-posts updates here)."
  value = {
    post_events     = google_pubsub_topic.post_events.id
    top_posts       = google_pubsub_topic.top_posts.id
    post_events_dlq = google_pubsub_topic.post_events_dlq.id
    top_posts_dlq   = google_pubsub_topic.top_posts_dlq.id
  }
}

output "subscriptions" {
  description = "Pub/Sub subscription ids (streaming job inputs and dead-letter inspection)."
  value = {
    post_events_streaming   = google_pubsub_subscription.post_events_streaming.id
    post_events_unstamped   = google_pubsub_subscription.post_events_unstamped.id
    top_posts_streaming     = google_pubsub_subscription.top_posts_streaming.id
    post_events_dlq_inspect = google_pubsub_subscription.post_events_dlq_inspect.id
    top_posts_dlq_inspect   = google_pubsub_subscription.top_posts_dlq_inspect.id
  }
}

output "bigtable_instance" {
  description = "Bigtable instance id (HASHTAGS_BIGTABLE_INSTANCE)."
  value       = google_bigtable_instance.hashtags.name
}

output "bigtable_table" {
  description = "Bigtable table id."
  value       = google_bigtable_table.hashtags.name
}

output "bigtable_app_profiles" {
  description = "App profiles: serving (web reads), writer (jobs)."
  value = {
    serving = google_bigtable_app_profile.serving.app_profile_id
    writer  = google_bigtable_app_profile.writer.app_profile_id
  }
}

output "archive_path" {
  description = "Folder of the post-event archive (streaming job output, recount input)."
  value       = local.archive_path
}

output "buckets" {
  description = "Bucket names."
  value = {
    archive          = google_storage_bucket.archive.name
    dataflow_staging = google_storage_bucket.dataflow_staging.name
    dataflow_temp    = google_storage_bucket.dataflow_temp.name
  }
}

output "images" {
  description = "Image names for image_tag (build and push them before apply: docs/DEPLOY.md)."
  value = {
    repository = local.docker_repository
    web        = local.web_image
    streaming  = local.streaming_image
  }
}

output "streaming_template_spec" {
  description = "Where `gcloud dataflow flex-template build` must write the template spec for image_tag."
  value       = local.streaming_template
}

output "streaming_job_id" {
  description = "Dataflow job id of the streaming job (null when deploy_streaming_job is false)."
  value       = one(google_dataflow_flex_template_job.streaming[*].job_id)
}

output "streaming_job" {
  description = "Name and count generation of the running streaming job (the name's suffix is the generation; an in-place update keeps both). Null when deploy_streaming_job is false."
  value = one([for job in google_dataflow_flex_template_job.streaming : {
    name             = job.name
    count_generation = job.parameters["count_generation"]
  }])
}

output "web_url" {
  description = "URL of the web service."
  value       = google_cloud_run_v2_service.web.uri
}

output "composer_dag_prefix" {
  description = "gs:// folder Composer reads DAGs from."
  value       = google_composer_environment.hashtags.config[0].dag_gcs_prefix
}

output "airflow_variables" {
  description = "Airflow Variables set on the Composer environment (as AIRFLOW_VAR_* env vars)."
  value       = local.airflow_variables
}

output "service_accounts" {
  description = "Service account emails."
  value = {
    web       = google_service_account.web.email
    streaming = google_service_account.streaming.email
    recount   = google_service_account.recount.email
    composer  = google_service_account.composer.email
  }
}

output "edge_ip_address" {
  description = "Public IPv4 address of the HTTPS load balancer: the DNS A record of web_domain."
  value       = google_compute_global_address.web.address
}

output "web_public_url" {
  description = "Public URL of the hashtag pages (through the edge cache)."
  value       = "https://${var.web_domain}"
}

output "edge_url_map" {
  description = "URL map of the edge (gcloud compute url-maps invalidate-cdn-cache <this> --path=...)."
  value       = google_compute_url_map.web.name
}

output "monitoring_dashboard" {
  description = "Cloud Monitoring dashboard id."
  value       = google_monitoring_dashboard.hashtags.id
}
