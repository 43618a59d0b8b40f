# Cloud Storage: the post-event archive (input of the nightly recount), Dataflow's buckets and the
# drift reports.
# All: regional, uniform bucket-level access, public access prevented.

# The archive: the streaming job writes every valid post event here under arrived=YYYY-MM-DD/ (the
# UTC day the job received it; hashtags/archive.py, docs/ARCHIVE.md); the reconciliation reads it.
# Objects are written once and never overwritten, so versioning is off (it would only keep deleted
# objects around). Nothing under the partitions is deleted by lifecycle: the archive is the source of
# truth for reconciliations and backfills. Only the writer's own temp files (post-events/.tmp/, each
# renamed into its partition within seconds) are removed when a crashed bundle left one behind.
resource "google_storage_bucket" "archive" {
  # checkov:skip=CKV_GCP_78: the archive is append-only (every object is written once, never overwritten); soft delete (7 days) covers accidental deletes, so versioning would only add cost.
  name                        = local.archive_bucket_name
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = 604800 # 7 days to undo an accidental delete
  }

  lifecycle_rule {
    condition {
      age                   = var.archive_nearline_after_days
      matches_storage_class = ["STANDARD"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age                   = var.archive_coldline_after_days
      matches_storage_class = ["NEARLINE"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  # A temp file older than 3 days belongs to a bundle that died between write and rename; its
  # events were rewritten by the retried bundle (pipelines/archive.py), so it is garbage.
  lifecycle_rule {
    condition {
      age            = 3
      matches_prefix = ["post-events/.tmp/"]
    }
    action {
      type = "Delete"
    }
  }

  # Parallel composite uploads or failed jobs can leave incomplete multipart uploads behind.
  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}

# Dataflow staging: flex template specs (templates/) and staged packages (staging/).
resource "google_storage_bucket" "dataflow_staging" {
  name                        = local.staging_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  # Versioned: an overwritten or deleted template spec can be restored to roll back a launch.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  # Staged SDK/package files of past launches; template specs (templates/) are kept.
  lifecycle_rule {
    condition {
      age            = 30
      matches_prefix = ["staging/"]
    }
    action {
      type = "Delete"
    }
  }
}

# Dataflow temp: scratch files of running jobs (and of the recount's temp_location).
resource "google_storage_bucket" "dataflow_temp" {
  # checkov:skip=CKV_GCP_78: scratch files of running jobs, deleted by lifecycle after a few days; nothing to restore.
  name                        = local.temp_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = false
  }

  soft_delete_policy {
    retention_duration_seconds = 0 # scratch data: no soft delete
  }

  lifecycle_rule {
    condition {
      age = var.temp_retention_days
    }
    action {
      type = "Delete"
    }
  }
}

# Drift reports of the nightly reconciliation (drift-<as_of>.json/.md): kept, unlike the temp bucket
# (a few days). Versioned: a rerun of a night rewrites its report and the earlier one stays
# readable for a while.
resource "google_storage_bucket" "reports" {
  name                        = "${var.project}-hashtags-reports"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_artifact_registry_repository" "images" {
  repository_id = "hashtags"
  location      = var.region
  format        = "DOCKER"
  description   = "Images of the web service and the streaming job's flex template launcher."

  docker_config {
    immutable_tags = true
  }

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "7776000s" # 90 days
    }
  }
}
