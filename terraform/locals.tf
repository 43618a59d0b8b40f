locals {
  # What the code defines and terraform must agree on: the Pub/Sub and Bigtable names
  # (hashtags/settings.py), the column families and GC rules (hashtags/layout.py), the event-time
  # attribute, the app's security headers. Written by `python -m hashtag_ops.terraform_values`;
  # tests/unit/test_terraform_values.py fails when the file is not current.
  code = jsondecode(file("${path.module}/generated/values.json"))

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
