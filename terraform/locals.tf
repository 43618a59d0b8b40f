locals {
  # Every Pub/Sub and Bigtable name below is a literal copy of hashtags/settings.py and every column
  # family / GC rule of hashtags/layout.py (terraform cannot import Python). tests/unit/test_terraform.py
  # parses these files and fails when either side changes alone.
  name_prefix = "hashtags-${var.environment}"

  labels = {
    app         = "hashtags"
    environment = var.environment
    managed-by  = "terraform"
  }

  is_prod = var.environment == "prod"

  # Bucket names are global: prefixed with the project id.
  archive_bucket_name  = "${var.project}-hashtags-archive"
  staging_bucket_name  = "${var.project}-hashtags-dataflow-staging"
  temp_bucket_name     = "${var.project}-hashtags-dataflow-temp"
  archive_path         = "gs://${local.archive_bucket_name}/post-events"
  streaming_template   = "gs://${local.staging_bucket_name}/templates/streaming-${var.image_tag}.json"
  docker_repository    = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.images.repository_id}"
  web_image            = "${local.docker_repository}/web:${var.image_tag}"
  streaming_image      = "${local.docker_repository}/streaming:${var.image_tag}"
  bigtable_instance_id = local.name_prefix
}
