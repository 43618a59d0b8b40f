# --- Where ---------------------------------------------------------------------------------------

variable "project" {
  description = "GCP project id. One project per environment (dev and prod never share a project)."
  type        = string
}

variable "region" {
  description = "Region for every regional resource (Dataflow, Cloud Run, Composer, buckets, Artifact Registry)."
  type        = string
  default     = "us-central1"
}

variable "environment" {
  description = "Environment name: dev or prod. Drives sizes and deletion protection."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be \"dev\" or \"prod\"."
  }
}

# --- Bigtable ------------------------------------------------------------------------------------

variable "bigtable_clusters" {
  description = <<-EOT
    Bigtable clusters, each autoscaled. One cluster in dev; two zones in prod (replication: the
    `serving` app profile routes reads to the nearest healthy cluster).
  EOT
  type = list(object({
    cluster_id = string
    zone       = string
    min_nodes  = number
    max_nodes  = number
  }))

  validation {
    condition     = length(var.bigtable_clusters) >= 1
    error_message = "At least one Bigtable cluster is needed."
  }
}

variable "bigtable_cpu_target" {
  description = "Autoscaling CPU utilisation target (percent). Google recommends 60-70 for latency-sensitive serving."
  type        = number
  default     = 60
}

variable "bigtable_storage_target_gib" {
  description = "Autoscaling storage utilisation target per node (GiB, SSD)."
  type        = number
  default     = 2560
}

# --- Pub/Sub -------------------------------------------------------------------------------------

variable "pubsub_message_retention" {
  description = "How long topics and subscriptions keep messages (acknowledged ones too, on topics), so a job can be replayed with seek."
  type        = string
  default     = "604800s" # 7 days, the maximum for a subscription
}

# --- Cloud Storage -------------------------------------------------------------------------------

variable "archive_nearline_after_days" {
  description = "Archive objects move to NEARLINE after this many days. The nightly recount reads old days too: see README (cost note)."
  type        = number
  default     = 30
}

variable "archive_coldline_after_days" {
  description = "Archive objects move to COLDLINE after this many days."
  type        = number
  default     = 365
}

variable "temp_retention_days" {
  description = "Objects in the Dataflow temp bucket are deleted after this many days."
  type        = number
  default     = 7
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete non-empty buckets. Only ever true in dev."
  type        = bool
  default     = false
}

# --- Images and the streaming job ----------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the web and streaming images in Artifact Registry (e.g. the git commit). See docs/DEPLOY.md."
  type        = string
}

variable "deploy_streaming_job" {
  description = "Launch the Dataflow streaming job. False until the flex template spec for image_tag has been built (docs/DEPLOY.md step 2)."
  type        = bool
  default     = true
}

variable "count_generation" {
  description = <<-EOT
    Count generation of the streaming job's hour cells (counts:h.<gen>, hashtags/layout.py). Keep it
    for an in-place update; bump it (+1) for every relaunch (drain + new job), so the new job's
    partial windows never overwrite the drained job's counts (docs/DEPLOY.md).
  EOT
  type        = number
  default     = 0

  validation {
    condition     = var.count_generation >= 0 && floor(var.count_generation) == var.count_generation
    error_message = "count_generation is a non-negative integer."
  }
}

variable "streaming_window_seconds" {
  description = "Fixed window of the streaming counts (hashtags counts:h.<gen> cells are hourly)."
  type        = number
  default     = 3600
}

variable "streaming_allowed_lateness_seconds" {
  description = "Allowed lateness of the hourly windows; later events are repaired by the nightly recount."
  type        = number
  default     = 21600 # 6 hours
}

variable "streaming_early_firing_seconds" {
  description = "Processing-time delay between early firings: how fresh the page's count is."
  type        = number
  default     = 30
}

variable "dataflow_max_workers" {
  description = "Upper bound of the streaming job's autoscaling."
  type        = number
  default     = 3
}

variable "dataflow_machine_type" {
  description = "Worker machine type of the streaming job."
  type        = string
  default     = "n2-standard-2"
}

# --- Cloud Run -----------------------------------------------------------------------------------

variable "web_min_instances" {
  description = "Instances kept warm (0 allows scale to zero in dev)."
  type        = number
  default     = 1
}

variable "web_max_instances" {
  description = "Upper bound of the web service's autoscaling."
  type        = number
  default     = 10
}

variable "web_concurrency" {
  description = "Concurrent requests per instance; gunicorn's workers x threads must be able to serve them."
  type        = number
  default     = 80
}

variable "web_cpu" {
  description = "CPU limit of one web instance."
  type        = string
  default     = "1"
}

variable "web_memory" {
  description = "Memory limit of one web instance."
  type        = string
  default     = "512Mi"
}

variable "web_image_origins" {
  description = "HASHTAGS_IMAGE_ORIGINS: origins the page may load images from (CSP img-src)."
  type        = list(string)
  default     = []
}

variable "web_post_url_template" {
  description = "HASHTAGS_POST_URL_TEMPLATE: link of a post in the grid, {post_id} is replaced."
  type        = string
  default     = "https://example.com/p/{post_id}"
}

variable "web_public" {
  description = "Grant allUsers roles/run.invoker: the hashtag pages are public web pages."
  type        = bool
  default     = true
}

# --- Composer ------------------------------------------------------------------------------------

variable "composer_image_version" {
  description = "Cloud Composer 3 image with Airflow 3 (the DAG imports from airflow.sdk). Pin an exact composer-3-airflow-3.x.y-build.z from Composer's version list for prod."
  type        = string
  default     = "composer-3-airflow-3"
}

variable "composer_environment_size" {
  description = "Composer 3 environment size."
  type        = string
  default     = "ENVIRONMENT_SIZE_SMALL"
}

variable "recount_drift_threshold" {
  description = "Airflow Variable hashtags_drift_threshold: the DAG's drift report task fails (alerts) when the drift ratio between the recount and the rows exceeds this."
  type        = string
  default     = "0.05"
}
