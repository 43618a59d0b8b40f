# The streaming job, launched from its Flex Template (docker/dataflow: Dockerfile + metadata.json).
#
# Build the image and the template spec first (docs/DEPLOY.md):
#   gcloud dataflow flex-template build gs://<staging bucket>/templates/streaming-<image_tag>.json ...
# Redeploy = change image_tag (new spec) or a parameter: the provider updates the running job in
# place (a launch with update=true and the same job name), so windows in flight and their state are
# kept, and count_generation stays. Renamed transforms need transform_name_mapping. If the update
# is refused as incompatible, drain and relaunch WITH count_generation + 1 (docs/DEPLOY.md).
#
# One image: the Flex Template launcher and the workers (sdk_container_image) run the same image,
# built FROM apache/beam_python3.11_sdk with the project installed (docker/dataflow/Dockerfile), so
# launcher and workers run the same Beam and workers install nothing at start-up.
resource "google_dataflow_flex_template_job" "streaming" {
  provider = google-beta
  count    = var.deploy_streaming_job ? 1 : 0

  name                    = "hashtags-streaming"
  region                  = var.region
  container_spec_gcs_path = local.streaming_template

  # Keys: docker/dataflow/metadata.json (checked by tests/unit/test_terraform.py); the job's options:
  # pipelines/options.py.
  parameters = {
    bigtable_project                   = var.project
    bigtable_instance                  = google_bigtable_instance.hashtags.name
    bigtable_table                     = google_bigtable_table.hashtags.name
    post_events_subscription           = google_pubsub_subscription.post_events_streaming.id
    post_events_unstamped_subscription = google_pubsub_subscription.post_events_unstamped.id
    top_posts_subscription             = google_pubsub_subscription.top_posts_streaming.id
    post_events_dlq_topic              = google_pubsub_topic.post_events_dlq.id
    top_posts_dlq_topic                = google_pubsub_topic.top_posts_dlq.id
    archive_path                       = local.archive_path
    window_seconds                     = tostring(var.streaming_window_seconds)
    allowed_lateness_seconds           = tostring(var.streaming_allowed_lateness_seconds)
    early_firing_seconds               = tostring(var.streaming_early_firing_seconds)
    count_generation                   = tostring(var.count_generation)
    sdk_container_image                = local.streaming_image
  }

  # Stopping the job (terraform destroy, or a replacement) drains it: Pub/Sub reads stop, every
  # open window fires, and what was read is written, so no acknowledged message is lost.
  on_delete = "drain"
  # Wait until the drain has finished: the next launch reuses the job name.
  skip_wait_on_job_termination = false

  service_account_email   = google_service_account.streaming.email
  temp_location           = "gs://${google_storage_bucket.dataflow_temp.name}/streaming"
  staging_location        = "gs://${google_storage_bucket.dataflow_staging.name}/staging"
  machine_type            = var.dataflow_machine_type
  max_workers             = var.dataflow_max_workers
  autoscaling_algorithm   = "THROUGHPUT_BASED"
  enable_streaming_engine = true

  labels = local.labels

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.streaming_dataflow_worker,
    google_bigtable_instance_iam_member.streaming_bigtable_user,
    google_pubsub_subscription_iam_member.streaming_subscriber,
    google_pubsub_subscription_iam_member.streaming_viewer,
    google_pubsub_topic_iam_member.streaming_dlq_publisher,
    google_storage_bucket_iam_member.streaming_buckets,
    google_artifact_registry_repository_iam_member.streaming_image_reader,
    google_bigtable_gc_policy.counts,
    google_bigtable_gc_policy.top,
    google_bigtable_gc_policy.meta,
  ]
}
