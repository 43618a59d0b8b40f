# Cloud Composer 3 with Airflow 3: runs the nightly reconciliation DAG (dags/hashtag_recount.py).
#
# The Airflow Variables the DAG reads are set as environment variables AIRFLOW_VAR_<NAME>
# (Airflow resolves Variable.get("hashtags_runner") from AIRFLOW_VAR_HASHTAGS_RUNNER before its
# metadata database), so they are versioned here and need no manual step in the Airflow UI.
#
# The DAG launches the job as a Flex Template (hashtags_recount_template) built from the streaming
# job's image (docs/DEPLOY.md "The DAG and backfills"): nothing of this project runs on the Airflow
# workers but the DAG file and the pure planning modules it imports, so Composer needs no PyPI
# packages: the DAG imports only airflow.sdk and the Beam/Google providers every Composer 3
# Airflow 3 build ships, and hashtags/{__init__,planning,archive}.py use the standard library only
# (hashtags/__init__ loads its regex-based text functions lazily).
locals {
  # The recount's Flex Template spec: written by the image build next to the streaming spec, from the
  # same image (metadata: docker/dataflow/recount-metadata.json).
  recount_template = "gs://${local.staging_bucket_name}/templates/recount-${var.image_tag}.json"

  airflow_variables = {
    hashtags_runner               = "DataflowRunner"
    hashtags_project              = var.project
    hashtags_region               = var.region
    hashtags_bigtable_instance    = google_bigtable_instance.hashtags.name
    hashtags_table                = google_bigtable_table.hashtags.name
    # The nightly's writes and its reads of its priors: single-cluster (hashtags.settings.WRITER_APP_PROFILE).
    hashtags_bigtable_app_profile = google_bigtable_app_profile.writer.app_profile_id
    hashtags_post_state_table     = google_bigtable_table.post_state.name
    hashtags_archive              = local.archive_path
    hashtags_temp_location        = "gs://${google_storage_bucket.dataflow_temp.name}/recount"
    hashtags_staging_location     = "gs://${google_storage_bucket.dataflow_staging.name}/staging"
    hashtags_service_account      = google_service_account.recount.email
    hashtags_recount_template     = local.recount_template
    hashtags_sdk_container_image  = local.streaming_image # one image: launcher and workers (docker/dataflow)
    hashtags_report_location      = "gs://${google_storage_bucket.reports.name}/drift"
    hashtags_drift_threshold      = var.recount_drift_threshold
  }

  # What the DAG folder holds: the DAG and, beside it, the modules it imports (the folder is on
  # the workers' sys.path). Keys are object names under the environment bucket.
  dag_files = {
    "dags/hashtag_recount.py"   = "${path.module}/../dags/hashtag_recount.py"
    "dags/hashtags/__init__.py" = "${path.module}/../hashtags/__init__.py"
    "dags/hashtags/planning.py" = "${path.module}/../hashtags/planning.py"
    "dags/hashtags/archive.py"  = "${path.module}/../hashtags/archive.py"
    # the report task's recount_run record (standard library only at import)
    "dags/hashtag_ops/__init__.py" = "${path.module}/../hashtag_ops/__init__.py"
    "dags/hashtag_ops/logs.py"     = "${path.module}/../hashtag_ops/logs.py"
    "dags/.airflowignore"          = "${path.module}/../dags/.airflowignore"
  }
  composer_bucket = regex("^gs://([^/]+)/", google_composer_environment.hashtags.config[0].dag_gcs_prefix)[0]
}

resource "google_composer_environment" "hashtags" {
  name   = local.name_prefix
  region = var.region

  config {
    environment_size = var.composer_environment_size

    # One nightly DAG of three tasks whose work runs on Dataflow: the smallest workloads, the values of
    # the provider's Composer 3 example (google-beta website/docs/r/composer_environment.html.markdown),
    # one worker at most two. The triggerer runs the deferrable Dataflow operator's waits, so a
    # worker slot is not held for the hours a night takes.
    workloads_config {
      scheduler {
        cpu        = 0.5
        memory_gb  = 2
        storage_gb = 1
        count      = 1
      }
      triggerer {
        cpu       = 0.5
        memory_gb = 1
        count     = 1
      }
      dag_processor {
        cpu        = 1
        memory_gb  = 2
        storage_gb = 1
        count      = 1
      }
      web_server {
        cpu        = 0.5
        memory_gb  = 2
        storage_gb = 1
      }
      worker {
        cpu        = 0.5
        memory_gb  = 2
        storage_gb = 1
        min_count  = 1
        max_count  = 2
      }
    }

    software_config {
      image_version = var.composer_image_version
      env_variables = { for name, value in local.airflow_variables : "AIRFLOW_VAR_${upper(name)}" => value }

      airflow_config_overrides = {
        core-dags_are_paused_at_creation = "False"
      }
    }

    node_config {
      service_account = google_service_account.composer.email
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.composer_worker,
    google_service_account_iam_member.composer_agent_ext,
  ]
}

# The DAG deployment: terraform apply uploads the DAG and its modules (a changed file is uploaded
# again: the provider compares the local file's MD5 with the object's).
resource "google_storage_bucket_object" "dag_files" {
  for_each = local.dag_files

  bucket       = local.composer_bucket
  name         = each.key
  source       = each.value
  content_type = "text/plain"
}

# --- Drift reports (a kept location, storage.tf) ------------------------------------------------

# The recount job writes drift-<as_of>.json/.md (and its .work/ summary, rewritten by a rerun).
resource "google_storage_bucket_iam_member" "recount_reports_writer" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectAdmin"
  member = local.recount_member
}

# publish_drift_report reads them.
resource "google_storage_bucket_iam_member" "composer_reports_viewer" {
  bucket = google_storage_bucket.reports.name
  role   = "roles/storage.objectViewer"
  member = local.composer_member
}
