# Cloud Composer 3 with Airflow 3: runs dags/ (the nightly recount). Deploy the DAG with
# `gcloud composer environments storage dags import` (docs/DEPLOY.md).
#
# The Airflow Variables the DAG reads are set as environment variables AIRFLOW_VAR_<NAME>
# (Airflow resolves Variable.get("hashtags_runner") from AIRFLOW_VAR_HASHTAGS_RUNNER before its
# metadata database), so they are versioned here and need no manual step in the Airflow UI.
locals {
  airflow_variables = {
    hashtags_runner             = "DataflowRunner"
    hashtags_project            = var.project
    hashtags_region             = var.region
    hashtags_bigtable_instance  = google_bigtable_instance.hashtags.name
    hashtags_table              = google_bigtable_table.hashtags.name
    hashtags_archive            = local.archive_path
    hashtags_temp_location      = "gs://${google_storage_bucket.dataflow_temp.name}/recount"
    hashtags_staging_location   = "gs://${google_storage_bucket.dataflow_staging.name}/staging"
    hashtags_service_account    = google_service_account.recount.email
    hashtags_drift_threshold    = var.recount_drift_threshold
  }
}

resource "google_composer_environment" "hashtags" {
  name   = local.name_prefix
  region = var.region

  config {
    environment_size = var.composer_environment_size

    software_config {
      image_version = var.composer_image_version
      env_variables = merge(
        { for name, value in local.airflow_variables : "AIRFLOW_VAR_${upper(name)}" => value },
        {
          # Where the DAG finds pipelines/recount_main.py and setup.py: the environment bucket's
          # data/ folder, mounted on the workers (docs/DEPLOY.md step 5 copies them there).
          HASHTAGS_PROJECT_ROOT = "/home/airflow/gcs/data/hashtags"
          # The workers' own Python (the Beam provider brings apache-beam); there is no .venv.
          HASHTAGS_PY_INTERPRETER = "python3"
        },
      )

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
