# The streaming job, launched from its Flex Template (docker/dataflow: Dockerfile + metadata.json).
#
# Build the image and the template spec first (docs/DEPLOY.md):
#   gcloud dataflow flex-template build gs://<staging bucket>/templates/streaming-<image_tag>.json ...
#
# Count generation <=> job (docs/DEPLOY.md "Count generation", with the provider's table of what
# replaces the job and what updates it in place):
# - A NEW job (first launch, a replacement forced by a change of name/region/project/num_workers/
#   max_workers/enable_streaming_engine, `-replace`, or a job that stopped outside terraform and is
#   created again) takes the plan's UTC time as its count generation, YYYYMMDDhhmmss: a non-negative
#   decimal integer (layout.hour_column), never the same for two launches.
# - An IN-PLACE update (a new image_tag or any other parameter: the provider relaunches with
#   update=true and the same name) keeps it: `ignore_changes` pins the count_generation parameter to
#   the value the job was created with. Terraform builds a replacement object from the
#   configuration without ignore_changes (hashicorp/terraform internal/terraform/
#   node_resource_abstract_instance.go, plan(): "a new unmarked config from our original with no
#   ignored values"; processIgnoreChanges returns the config unchanged when there is no prior object).
# So a generation never changes without a new job, and no new job keeps an old generation.
#
# One image: the Flex Template launcher and the workers (sdk_container_image) run the same image,
# built FROM apache/beam_python3.11_sdk with the project installed (docker/dataflow/Dockerfile), so
# launcher and workers run the same Beam and workers install nothing at start-up.
locals {
  # The count generation of a job created by this plan (ignored for the running job: see above).
  new_job_count_generation = formatdate("YYYYMMDDhhmmss", plantimestamp())
}

resource "google_dataflow_flex_template_job" "streaming" {
  provider = google-beta
  count    = var.deploy_streaming_job ? 1 : 0

  # One name for every generation: Dataflow refuses a second ACTIVE job of a name, so two jobs never
  # read the subscriptions at once, and monitoring.tf's series stay one per name across relaunches.
  name                    = "hashtags-streaming"
  region                  = var.region
  container_spec_gcs_path = local.streaming_template

  # Keys: docker/dataflow/metadata.json (checked by tests/unit/test_terraform.py); the job's options:
  # pipelines/options.py.
  parameters = {
    bigtable_project                   = var.project
    bigtable_instance                  = google_bigtable_instance.hashtags.name
    bigtable_table                     = google_bigtable_table.hashtags.name
    bigtable_app_profile               = google_bigtable_app_profile.writer.app_profile_id # single-cluster writes
    post_events_subscription           = google_pubsub_subscription.post_events_streaming.id
    post_events_unstamped_subscription = google_pubsub_subscription.post_events_unstamped.id
    top_posts_subscription             = google_pubsub_subscription.top_posts_streaming.id
    post_events_dlq_topic              = google_pubsub_topic.post_events_dlq.id
    top_posts_dlq_topic                = google_pubsub_topic.top_posts_dlq.id
    archive_path                       = local.archive_path
    window_seconds                     = tostring(var.streaming_window_seconds)
    allowed_lateness_seconds           = tostring(var.streaming_allowed_lateness_seconds)
    early_firing_seconds               = tostring(var.streaming_early_firing_seconds)
    count_generation                   = local.new_job_count_generation
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

  lifecycle {
    # Fixed at the job's creation; a replacement takes a new one (see the top of this file).
    ignore_changes = [parameters["count_generation"]]
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.streaming_dataflow_worker,
    google_bigtable_instance_iam_member.streaming_bigtable_user,
    google_pubsub_subscription_iam_member.streaming_subscriber,
    google_pubsub_subscription_iam_member.streaming_viewer,
    google_pubsub_topic_iam_member.streaming_dlq_publisher,
    google_storage_bucket_iam_member.streaming_buckets,
    google_artifact_registry_repository_iam_member.streaming_image_reader,
    google_bigtable_gc_policy.family,
  ]
}
