# Service accounts, least privilege. Grants are on the resource (instance, subscription, topic,
# bucket, repository) wherever the resource supports IAM; project-level roles only where GCP has
# no narrower scope (dataflow.worker, dataflow.developer, composer.worker).

resource "google_service_account" "web" {
  account_id   = "hashtags-web"
  display_name = "Hashtags web service (Cloud Run): reads Bigtable only"
}

resource "google_service_account" "streaming" {
  account_id   = "hashtags-streaming"
  display_name = "Hashtags streaming job (Dataflow workers and flex template launcher)"
}

resource "google_service_account" "recount" {
  account_id   = "hashtags-recount"
  display_name = "Hashtags nightly recount / backfill (Dataflow batch workers)"
}

resource "google_service_account" "composer" {
  account_id   = "hashtags-composer"
  display_name = "Hashtags Cloud Composer environment (runs the recount DAG)"
}

locals {
  streaming_member = "serviceAccount:${google_service_account.streaming.email}"
  recount_member   = "serviceAccount:${google_service_account.recount.email}"
  composer_member  = "serviceAccount:${google_service_account.composer.email}"
  web_member       = "serviceAccount:${google_service_account.web.email}"
}

# --- Web: read the table, nothing else ------------------------------------------------------------

resource "google_bigtable_instance_iam_member" "web_reader" {
  instance = google_bigtable_instance.hashtags.name
  role     = "roles/bigtable.reader"
  member   = local.web_member
}

# --- Streaming job --------------------------------------------------------------------------------

resource "google_project_iam_member" "streaming_dataflow_worker" {
  project = var.project
  role    = "roles/dataflow.worker"
  member  = local.streaming_member
}

resource "google_bigtable_instance_iam_member" "streaming_bigtable_user" {
  instance = google_bigtable_instance.hashtags.name
  role     = "roles/bigtable.user"
  member   = local.streaming_member
}

locals {
  streaming_subscriptions = {
    post_events           = google_pubsub_subscription.post_events_streaming.id
    post_events_unstamped = google_pubsub_subscription.post_events_unstamped.id
    top_posts             = google_pubsub_subscription.top_posts_streaming.id
  }
}

resource "google_pubsub_subscription_iam_member" "streaming_subscriber" {
  for_each = local.streaming_subscriptions

  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.streaming_member
}

# Dataflow's Pub/Sub source reads the subscription's metadata (backlog, watermark tracking).
resource "google_pubsub_subscription_iam_member" "streaming_viewer" {
  for_each = local.streaming_subscriptions

  subscription = each.value
  role         = "roles/pubsub.viewer"
  member       = local.streaming_member
}

# The job dead-letters invalid messages (with the reason) onto the DLQ topics.
resource "google_pubsub_topic_iam_member" "streaming_dlq_publisher" {
  for_each = local.dead_letter_topics

  topic  = each.value
  role   = "roles/pubsub.publisher"
  member = local.streaming_member
}

resource "google_storage_bucket_iam_member" "streaming_buckets" {
  for_each = {
    archive = google_storage_bucket.archive.name
    staging = google_storage_bucket.dataflow_staging.name
    temp    = google_storage_bucket.dataflow_temp.name
  }

  bucket = each.value
  role   = "roles/storage.objectAdmin"
  member = local.streaming_member
}

# The flex template launcher and the workers pull the streaming image.
resource "google_artifact_registry_repository_iam_member" "streaming_image_reader" {
  repository = google_artifact_registry_repository.images.name
  location   = google_artifact_registry_repository.images.location
  role       = "roles/artifactregistry.reader"
  member     = local.streaming_member
}

# --- Recount job (batch, launched by Composer) ---------------------------------------------------

resource "google_project_iam_member" "recount_dataflow_worker" {
  project = var.project
  role    = "roles/dataflow.worker"
  member  = local.recount_member
}

# Reads and writes rows of the existing tables (counts, days, post_state): data access only. The
# tables come from terraform (bigtable.tf); a production run never creates one, so no admin role.
resource "google_bigtable_instance_iam_member" "recount_bigtable_user" {
  instance = google_bigtable_instance.hashtags.name
  role     = "roles/bigtable.user"
  member   = local.recount_member
}

# The recount's Flex Template launcher and its workers pull recount:<tag> / streaming:<tag> from the
# same repository (docs/DEPLOY.md "The recount's Flex Template").
resource "google_artifact_registry_repository_iam_member" "recount_image_reader" {
  repository = google_artifact_registry_repository.images.name
  location   = google_artifact_registry_repository.images.location
  role       = "roles/artifactregistry.reader"
  member     = local.recount_member
}

resource "google_storage_bucket_iam_member" "recount_archive_reader" {
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectViewer"
  member = local.recount_member
}

resource "google_storage_bucket_iam_member" "recount_dataflow_buckets" {
  for_each = {
    staging = google_storage_bucket.dataflow_staging.name
    temp    = google_storage_bucket.dataflow_temp.name
  }

  bucket = each.value
  role   = "roles/storage.objectAdmin"
  member = local.recount_member
}

# --- Composer -------------------------------------------------------------------------------------

resource "google_project_iam_member" "composer_worker" {
  # checkov:skip=CKV_GCP_49: Cloud Composer requires roles/composer.worker on the project for its environment's service account; there is no narrower scope.
  project = var.project
  role    = "roles/composer.worker"
  member  = local.composer_member
}

# Launch and watch the recount job on Dataflow.
resource "google_project_iam_member" "composer_dataflow_developer" {
  # checkov:skip=CKV_GCP_49: Dataflow jobs have no resource-level IAM; launching the recount needs roles/dataflow.developer on the project. Acting as a service account is granted separately, on the recount account only.
  project = var.project
  role    = "roles/dataflow.developer"
  member  = local.composer_member
}

# ... as the recount service account (actAs), on that account only.
resource "google_service_account_iam_member" "composer_acts_as_recount" {
  service_account_id = google_service_account.recount.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.composer_member
}

# The DAG checks that the archive has the day before it launches the recount.
resource "google_storage_bucket_iam_member" "composer_archive_viewer" {
  bucket = google_storage_bucket.archive.name
  role   = "roles/storage.objectViewer"
  member = local.composer_member
}

# Stages the pipeline package for the recount job.
resource "google_storage_bucket_iam_member" "composer_dataflow_buckets" {
  for_each = {
    staging = google_storage_bucket.dataflow_staging.name
    temp    = google_storage_bucket.dataflow_temp.name
  }

  bucket = each.value
  role   = "roles/storage.objectAdmin"
  member = local.composer_member
}

# Composer's service agent manages the environment's workloads as the environment's account.
resource "google_service_account_iam_member" "composer_agent_ext" {
  service_account_id = google_service_account.composer.name
  role               = "roles/composer.ServiceAgentV2Ext"
  member             = "serviceAccount:service-${data.google_project.this.number}@cloudcomposer-accounts.iam.gserviceaccount.com"
}
