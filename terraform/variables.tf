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
  description = "Concurrent requests per instance; granian's workers x threads (serving/server.py) must be able to serve them."
  type        = number
  default     = 80
}

variable "web_cpu" {
  description = "CPU limit of one web instance, whole vCPUs (also the number of granian workers: WEB_CONCURRENCY)."
  type        = string
  default     = "1"
  validation {
    condition     = can(regex("^[1-8]$", var.web_cpu))
    error_message = "web_cpu is a whole number of vCPUs (1-8): it also sets WEB_CONCURRENCY."
  }
}

variable "web_memory" {
  description = "Memory limit of one web instance."
  type        = string
  default     = "512Mi"
}

variable "page_cache_bytes" {
  description = "HASHTAGS_PAGE_CACHE_BYTES: byte budget of each granian worker's page cache, stale copies included (serving/cache.py). 64 MiB: two workers (web_cpu = 2) on a 1 GiB instance keep ~2 x (100 MB process + 64 MiB bodies + their objects) well under the limit."
  type        = number
  default     = 67108864 # 64 MiB

  validation {
    condition     = var.page_cache_bytes >= 0 && floor(var.page_cache_bytes) == var.page_cache_bytes
    error_message = "page_cache_bytes is a whole number of bytes."
  }
}

variable "web_image_origins" {
  description = "HASHTAGS_IMAGE_ORIGINS: origins the page may load images from (CSP img-src)."
  type        = list(string)
  default     = []
  # One CSP source each, by the rule the code writes (hashtag_ops.terraform_values
  # IMAGE_ORIGIN_PATTERNS, read from local.code), so the app's CSP and the edge's stay equal.
  validation {
    condition     = alltrue([for o in var.web_image_origins : alltrue([for p in local.code.edge.image_origin_patterns : can(regex(p, o))])])
    error_message = "Each web_image_origins entry is one CSP source (e.g. https://images.example.com): printable ASCII, no spaces, commas, semicolons, quotes or braces."
  }
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
  description = "Composer 3 environment size (the managed infrastructure: Airflow database, web server host). SMALL: the environment runs one nightly DAG."
  type        = string
  default     = "ENVIRONMENT_SIZE_SMALL"
}

variable "recount_drift_threshold" {
  description = "Airflow Variable hashtags_drift_threshold: the DAG's drift report task fails (alerts) when the drift ratio between the recount and the rows exceeds this."
  type        = string
  default     = "0.05"
}

# --- Monitoring (monitoring.tf) ----------------------------------------------------------------------

variable "notification_channels" {
  description = "Notification channel ids every alert policy notifies (projects/<project>/notificationChannels/<id>; create them in the console or with gcloud). Empty: incidents open in the console only."
  type        = list(string)
  default     = []
}

variable "runbook_url" {
  description = "Where each alert's documentation points: the runbook, followed by #<section anchor>. Replace with the repository's URL of docs/OPERATIONS.md."
  type        = string
  default     = "docs/OPERATIONS.md"
}

variable "alert_post_events_backlog_messages" {
  description = "Alert when post-events-streaming holds more undelivered messages than this for 10 minutes."
  type        = number
  default     = 100000
}

variable "alert_oldest_unacked_seconds" {
  description = "Alert when a subscription of the streaming job has an unacknowledged message older than this (seconds) for 5 minutes."
  type        = number
  default     = 600
}

variable "alert_data_freshness_seconds" {
  description = "Alert when the streaming job's data freshness (job/data_watermark_age) exceeds this (seconds) for 5 minutes."
  type        = number
  default     = 600
}

variable "alert_system_lag_seconds" {
  description = "Alert when the streaming job's system lag exceeds this (seconds) for 5 minutes."
  type        = number
  default     = 300
}

variable "recount_max_base_age_hours" {
  description = "Alert when no reconciliation run has written a new base for this many hours (one missed nightly run plus slack)."
  type        = number
  default     = 36

  validation {
    condition     = var.recount_max_base_age_hours >= 25 && floor(var.recount_max_base_age_hours) == var.recount_max_base_age_hours
    error_message = "recount_max_base_age_hours is a whole number of hours, at least 25 (the DAG runs every 24 h)."
  }
}

variable "recount_log_resource_type" {
  description = "Monitored-resource type of the recount_run log entries the alerts count (the DAG's report task runs on Composer)."
  type        = string
  default     = "cloud_composer_environment"
}

variable "alert_web_5xx_ratio" {
  description = "Alert when this fraction of the requests reaching Cloud Run answer 5xx, for 5 minutes."
  type        = number
  default     = 0.02
}

variable "alert_web_p99_latency_ms" {
  description = "Alert when Cloud Run's p99 request latency exceeds this (milliseconds) for 10 minutes."
  type        = number
  default     = 1000
}

variable "alert_bigtable_cpu" {
  description = "Alert when a Bigtable cluster's CPU load (0-1) stays above this for 15 minutes (autoscaling targets bigtable_cpu_target)."
  type        = number
  default     = 0.8
}

variable "alert_bigtable_hottest_node_cpu" {
  description = "Alert when a Bigtable cluster's hottest node CPU load (0-1) stays above this for 15 minutes."
  type        = number
  default     = 0.9
}

variable "alert_bigtable_storage" {
  description = "Alert when a Bigtable cluster's storage utilisation (0-1) stays above this for 15 minutes."
  type        = number
  default     = 0.7
}

# --- Edge: HTTPS load balancer and Cloud CDN (edge.tf) ---------------------------------------------

variable "web_domain" {
  description = "Public host name of the hashtag pages, served by the HTTPS load balancer with a Google-managed certificate. Its DNS A record must point at output edge_ip_address."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.web_domain))
    error_message = "web_domain is a lower-case DNS name such as hashtags.example.com."
  }
}

variable "web_ingress" {
  description = "Cloud Run ingress. INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER: only the load balancer (and internal traffic) reaches the service, so every public request goes through the edge cache. INGRESS_TRAFFIC_ALL only while the certificate is provisioning on a first deploy (docs/DEPLOY.md)."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"

  validation {
    condition     = contains(["INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_ALL"], var.web_ingress)
    error_message = "web_ingress is INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER or INGRESS_TRAFFIC_ALL."
  }
}

variable "edge_log_sample_rate" {
  description = "Fraction of load-balancer requests logged (request logs show cache hits and misses; 1.0 logs every request)."
  type        = number
  default     = 0.1
}
