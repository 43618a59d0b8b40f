# Alerts, the log-based metrics they need, and one dashboard with the same signals.
#
# Every policy's documentation names its runbook section: docs/OPERATIONS.md#<anchor> (the heading's
# anchor; tests/unit/test_terraform_monitoring.py checks that each named heading exists). Names come
# from the resources (subscriptions, job, service, instance), which equal hashtags/settings.py.
#
# Verified in Cloud Monitoring's documentation (the `search` tool, 2026-12-01):
# - metric-absence conditions: the maximum trigger absence time is 23.5 h ("Create metric-absence
#   alerting policies"), and an alerting policy's alignment period is at most 90,000 s = 25 h
#   (Aggregation.alignment_period reference). "No new base for 36 h" therefore cannot be an absence
#   or a 36 h-aligned threshold condition: it is a PromQL condition (PromQL conditions look back over
#   a range of the query's choosing; "PromQL-based alerting policies"), `increase(...[36h])` of the
#   log-based counter, with `or on() vector(0)` so that NO series at all (no run ever, or none
#   retained) also fires. A PromQL policy has exactly one condition.
# - PromQL names: the first "/" of a metric type becomes ":", every other "." and "/" becomes "_"
#   (logging.googleapis.com/user/X -> logging_googleapis_com:user_X); log-based metrics map to many
#   monitored-resource types, so the query names one with the `monitored_resource` label
#   ("Mapping Cloud Monitoring metrics to PromQL"). Monarch stores counter/delta samples with a time
#   range, and rate/increase use them ("PromQL differences").
# - Aligners: ALIGN_DELTA / ALIGN_RATE are valid only for DELTA and CUMULATIVE metrics (Aggregation
#   reference), so "any growth" of a GAUGE backlog is PromQL delta(), not a threshold condition.
# Metric types and labels below were cross-checked against Google's pages where the stored copies
# had them and against public configurations using them (the code index); the stored copies did
# not include the full metric list, so value types are as those configurations use them
# (job/is_failed with ALIGN_MAX, i.e. numeric):
# - Pub/Sub: subscription/num_undelivered_messages and subscription/oldest_unacked_message_age
#   (GAUGE, resource pubsub_subscription, label subscription_id).
# - Dataflow (resource dataflow_job, label job_name): job/data_watermark_age (data freshness),
#   job/system_lag, job/is_failed ("Dataflow job metrics").
# - Cloud Run (resource cloud_run_revision, label service_name): run.googleapis.com/request_count
#   (label response_code_class, e.g. "5xx") and request_latencies (distribution, ms).
# - Bigtable (resource bigtable_cluster, labels instance, cluster): cluster/cpu_load,
#   cluster/cpu_load_hottest_node, cluster/storage_utilization (fractions 0-1).
# - Composer (resource cloud_composer_workflow, label workflow_name = the DAG id):
#   composer.googleapis.com/workflow/run_count with metric label state (success, failed).
# - Load balancer (resource https_lb_rule): loadbalancing.googleapis.com/https/request_count with
#   metric label cache_result (dashboard only).
# What is NOT verified here: nothing of this has been applied (no network, no terraform on the
# development machines: terraform/README.md "Not run here").

locals {
  # The log events these metrics filter on are fixed by hashtag_ops.logs (its module docstring).
  recount_run_filter = "jsonPayload.event=\"recount_run\" AND NOT jsonPayload.dry_run=true"

  # PromQL names of the log-based metrics (see the mapping rule above).
  promql_recount_runs = "logging_googleapis_com:user_${google_logging_metric.recount_runs.name}"

  dlq_subscriptions = {
    post_events = google_pubsub_subscription.post_events_dlq_inspect.name
    top_posts   = google_pubsub_subscription.top_posts_dlq_inspect.name
  }
  # The three subscriptions the streaming job reads.
  input_subscriptions = [
    google_pubsub_subscription.post_events_streaming.name,
    google_pubsub_subscription.post_events_unstamped.name,
    google_pubsub_subscription.top_posts_streaming.name,
  ]

  web_revision_filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${google_cloud_run_v2_service.web.name}\""
  bigtable_filter     = "resource.type = \"bigtable_cluster\" AND resource.labels.instance = \"${google_bigtable_instance.hashtags.name}\""

  # Drift buckets: multiples of the threshold, so the threshold is a bucket bound and a percentile
  # interpolated inside a bucket stays on the same side of it as the value it summarises.
  drift_threshold = tonumber(var.recount_drift_threshold)
  drift_bounds    = [for m in [0.1, 0.2, 0.5, 1, 2, 5, 10, 20] : m * local.drift_threshold]
}

# --- Log-based metrics (the nightly reconciliation) -----------------------------------------------

# One count per run summary (event "recount_run"), by status (succeeded | failed | drift) and mode.
resource "google_logging_metric" "recount_runs" {
  name        = "hashtags_recount_runs"
  description = "Nightly reconciliation runs (log event recount_run), by status and mode; dry runs excluded."
  filter      = local.recount_run_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Hashtags recount runs"

    labels {
      key         = "status"
      value_type  = "STRING"
      description = "succeeded, failed or drift (a base was written, drift over the threshold)."
    }
    labels {
      key         = "mode"
      value_type  = "STRING"
      description = "Run mode (nightly, reapply, full_rebuild)."
    }
  }

  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
    mode   = "EXTRACT(jsonPayload.mode)"
  }

  depends_on = [google_project_service.enabled]
}

# The drift ratio of each run (jsonPayload.drift_ratio of recount_run) as a distribution.
resource "google_logging_metric" "recount_drift_ratio" {
  name            = "hashtags_recount_drift_ratio"
  description     = "Drift ratio reported by each reconciliation run (log event recount_run)."
  filter          = "${local.recount_run_filter} AND jsonPayload.drift_ratio>=0"
  value_extractor = "EXTRACT(jsonPayload.drift_ratio)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "Hashtags recount drift ratio"

    labels {
      key         = "mode"
      value_type  = "STRING"
      description = "Run mode (nightly, reapply, full_rebuild)."
    }
  }

  label_extractors = {
    mode = "EXTRACT(jsonPayload.mode)"
  }

  bucket_options {
    explicit_buckets {
      bounds = local.drift_bounds
    }
  }

  depends_on = [google_project_service.enabled]
}

# Requests the web service logged one by one (log event "http_request"), by the in-process cache
# state (miss | stale | none; hit only when slow) and status. Quick in-process cache hits have no line
# of their own since issue 21: each process sums them in one "http_hits" line a minute (hits,
# statuses, top_tags; docs/OPERATIONS.md "Web traffic and the in-process cache"), so this metric over
# Cloud Run's request_count is the share of requests that were NOT answered from the in-process
# cache (the dashboard's ratio chart).
resource "google_logging_metric" "web_requests" {
  name        = "hashtags_web_requests"
  description = "Requests the web service logged one by one (log event http_request: all but quick in-process cache hits), by in-process cache state and HTTP status."
  filter      = "jsonPayload.event=\"http_request\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Hashtags web requests"

    labels {
      key         = "cache"
      value_type  = "STRING"
      description = "In-process cache state: hit, miss, stale or none."
    }
    labels {
      key         = "status"
      value_type  = "STRING"
      description = "HTTP status code."
    }
  }

  label_extractors = {
    cache  = "EXTRACT(jsonPayload.cache)"
    status = "EXTRACT(httpRequest.status)"
  }

  depends_on = [google_project_service.enabled]
}

# --- Pub/Sub ----------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "post_events_backlog" {
  display_name          = "Hashtags: post-events backlog"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "The streaming job is not keeping up with its subscriptions (backlog, or an old unacknowledged message). Runbook: ${var.runbook_url}#post-events-backlog"
  }

  conditions {
    display_name = "post-events-streaming backlog > ${var.alert_post_events_backlog_messages} messages for 10 min"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.post_events_streaming.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_post_events_backlog_messages
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  conditions {
    display_name = "oldest unacked message of a job subscription older than ${var.alert_oldest_unacked_seconds} s"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = one_of(\"${join("\", \"", local.input_subscriptions)}\") AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_unacked_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

# Any growth of a dead-letter backlog: delta() of the gauge over 10 minutes, one series (and
# incident) per DLQ subscription. A steady or shrinking backlog (after a redrive) does not fire.
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "Hashtags: new dead letters"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "New messages arrived on a dead-letter subscription (post-events-dlq-inspect or top-posts-dlq-inspect). Runbook: ${var.runbook_url}#dead-letters"
  }

  conditions {
    display_name = "DLQ backlog grew in the last 10 min"
    condition_prometheus_query_language {
      query               = "delta(pubsub_googleapis_com:subscription_num_undelivered_messages{monitored_resource=\"pubsub_subscription\",subscription_id=~\"${join("|", values(local.dlq_subscriptions))}\"}[10m]) > 0"
      duration            = "0s"
      evaluation_interval = "60s"
      rule_group          = "hashtags"
      alert_rule          = "DeadLetterBacklogGrowing"
    }
  }

  alert_strategy {
    auto_close = "21600s"
  }
}

# --- Dataflow streaming job --------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "streaming_freshness" {
  count = var.deploy_streaming_job ? 1 : 0

  display_name          = "Hashtags: streaming job lagging"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "The streaming job's data freshness or system lag is over its threshold: page counts are getting old. Runbook: ${var.runbook_url}#streaming-job-lagging"
  }

  conditions {
    display_name = "data freshness (data_watermark_age) > ${var.alert_data_freshness_seconds} s for 5 min"
    condition_threshold {
      filter          = "resource.type = \"dataflow_job\" AND resource.labels.job_name = \"${google_dataflow_flex_template_job.streaming[0].name}\" AND metric.type = \"dataflow.googleapis.com/job/data_watermark_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_data_freshness_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "system lag > ${var.alert_system_lag_seconds} s for 5 min"
    condition_threshold {
      filter          = "resource.type = \"dataflow_job\" AND resource.labels.job_name = \"${google_dataflow_flex_template_job.streaming[0].name}\" AND metric.type = \"dataflow.googleapis.com/job/system_lag\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_system_lag_seconds
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

# Not running = failed, or no longer reporting at all (cancelled, drained and not relaunched).
# Series are grouped by job_name, so an in-place update (new job id, same name) keeps one series.
resource "google_monitoring_alert_policy" "streaming_not_running" {
  count = var.deploy_streaming_job ? 1 : 0

  display_name          = "Hashtags: streaming job not running"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "The streaming job hashtags-streaming failed or stopped reporting: no counts are being written. Runbook: ${var.runbook_url}#streaming-job-not-running"
  }

  conditions {
    display_name = "job/is_failed > 0"
    condition_threshold {
      filter          = "resource.type = \"dataflow_job\" AND resource.labels.job_name = \"${google_dataflow_flex_template_job.streaming[0].name}\" AND metric.type = \"dataflow.googleapis.com/job/is_failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.job_name"]
      }
    }
  }

  conditions {
    display_name = "job/is_failed not reported for 15 min (job gone)"
    condition_absent {
      filter   = "resource.type = \"dataflow_job\" AND resource.labels.job_name = \"${google_dataflow_flex_template_job.streaming[0].name}\" AND metric.type = \"dataflow.googleapis.com/job/is_failed\""
      duration = "900s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.job_name"]
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

# --- The nightly reconciliation --------------------------------------------------------------------------

# A run reported status=failed, or a DAG run of hashtag_recount failed (which also covers a failure
# before the report task could log anything, e.g. the Dataflow job failed). A drift over the
# threshold fails the DAG run too (publish_drift_report), so the drift alert comes with this one.
resource "google_monitoring_alert_policy" "recount_failed" {
  display_name          = "Hashtags: nightly reconciliation failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A reconciliation run failed (recount_run status=failed, or a failed hashtag_recount DAG run). Runbook: ${var.runbook_url}#reconciliation-failed"
  }

  conditions {
    display_name = "recount_run with status=failed"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.recount_runs.name}\" AND metric.labels.status = \"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "failed DAG run of ${local.recount_dag_id}"
    condition_threshold {
      filter          = "resource.type = \"cloud_composer_workflow\" AND resource.labels.workflow_name = \"${local.recount_dag_id}\" AND metric.type = \"composer.googleapis.com/workflow/run_count\" AND metric.labels.state = \"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

# No new base for more than var.recount_max_base_age_hours (default 36 h: one missed night plus
# the 02:00 schedule's slack). A new base = a recount_run with status succeeded or drift (drift
# still writes the base), or a successful DAG run (Composer's own metric: it does not depend on the
# task's log line reaching Cloud Logging as jsonPayload). Each side defaults to 0 when it has no
# series, and the sum must reach 1. This fires right after the first deploy too, until the first
# nightly has run: the runbook says so. (A manual dry-run DAG run counts as a success here.)
resource "google_monitoring_alert_policy" "recount_stale" {
  display_name          = "Hashtags: no new reconciliation base"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "No reconciliation run wrote a new base in the last ${var.recount_max_base_age_hours} h. Runbook: ${var.runbook_url}#no-new-base"
  }

  conditions {
    display_name = "no succeeded/drift recount_run and no successful DAG run in ${var.recount_max_base_age_hours} h"
    condition_prometheus_query_language {
      query               = "(sum(increase(${local.promql_recount_runs}{monitored_resource=\"${var.recount_log_resource_type}\",status=~\"succeeded|drift\"}[${var.recount_max_base_age_hours}h])) or on() vector(0)) + (sum(increase(composer_googleapis_com:workflow_run_count{monitored_resource=\"cloud_composer_workflow\",workflow_name=\"${local.recount_dag_id}\",state=\"success\"}[${var.recount_max_base_age_hours}h])) or on() vector(0)) < 1"
      duration            = "0s"
      evaluation_interval = "300s"
      rule_group          = "hashtags"
      alert_rule          = "ReconciliationBaseStale"
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

resource "google_monitoring_alert_policy" "recount_drift" {
  display_name          = "Hashtags: reconciliation drift over threshold"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A reconciliation run found a drift ratio over ${var.recount_drift_threshold} between the recount and the rows (the counts are already repaired). Runbook: ${var.runbook_url}#drift-over-threshold"
  }

  conditions {
    display_name = "recount drift ratio > ${var.recount_drift_threshold}"
    condition_threshold {
      filter          = "metric.type = \"logging.googleapis.com/user/${google_logging_metric.recount_drift_ratio.name}\" AND resource.type = \"${var.recount_log_resource_type}\""
      comparison      = "COMPARISON_GT"
      threshold_value = local.drift_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }
}

# --- Cloud Run (the origin behind the edge cache) --------------------------------------------------

resource "google_monitoring_alert_policy" "web_errors" {
  display_name          = "Hashtags: web 5xx ratio"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.alert_web_5xx_ratio * 100} % of the requests reaching Cloud Run answer 5xx. Runbook: ${var.runbook_url}#web-5xx-ratio"
  }

  conditions {
    display_name = "5xx / all requests > ${var.alert_web_5xx_ratio} for 5 min"
    condition_threshold {
      filter             = "${local.web_revision_filter} AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\""
      denominator_filter = "${local.web_revision_filter} AND metric.type = \"run.googleapis.com/request_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alert_web_5xx_ratio
      duration           = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

resource "google_monitoring_alert_policy" "web_latency" {
  display_name          = "Hashtags: web p99 latency"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "The 99th percentile of Cloud Run request latency is over ${var.alert_web_p99_latency_ms} ms. Runbook: ${var.runbook_url}#web-p99-latency"
  }

  conditions {
    display_name = "request_latencies p99 > ${var.alert_web_p99_latency_ms} ms for 10 min"
    condition_threshold {
      filter          = "${local.web_revision_filter} AND metric.type = \"run.googleapis.com/request_latencies\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_web_p99_latency_ms
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_99"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

# --- Bigtable -----------------------------------------------------------------------------------------

# Autoscaling keeps CPU near var.bigtable_cpu_target (60 %); staying above the alert level means
# the clusters are at max_nodes, or one node is hot (a hot row key).
resource "google_monitoring_alert_policy" "bigtable_cpu" {
  display_name          = "Hashtags: Bigtable CPU"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A Bigtable cluster's CPU load (or its hottest node's) is over the alert level. Runbook: ${var.runbook_url}#bigtable-cpu"
  }

  conditions {
    display_name = "cluster cpu_load > ${var.alert_bigtable_cpu} for 15 min"
    condition_threshold {
      filter          = "${local.bigtable_filter} AND metric.type = \"bigtable.googleapis.com/cluster/cpu_load\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_bigtable_cpu
      duration        = "900s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  conditions {
    display_name = "hottest node cpu > ${var.alert_bigtable_hottest_node_cpu} for 15 min"
    condition_threshold {
      filter          = "${local.bigtable_filter} AND metric.type = \"bigtable.googleapis.com/cluster/cpu_load_hottest_node\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_bigtable_hottest_node_cpu
      duration        = "900s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

resource "google_monitoring_alert_policy" "bigtable_storage" {
  display_name          = "Hashtags: Bigtable storage"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A Bigtable cluster's storage utilisation is over ${var.alert_bigtable_storage * 100} % of its capacity. Runbook: ${var.runbook_url}#bigtable-storage"
  }

  conditions {
    display_name = "storage_utilization > ${var.alert_bigtable_storage} for 15 min"
    condition_threshold {
      filter          = "${local.bigtable_filter} AND metric.type = \"bigtable.googleapis.com/cluster/storage_utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_bigtable_storage
      duration        = "900s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }
}

# --- Dashboard ------------------------------------------------------------------------------------------

locals {
  # The DAG id (dags/hashtag_recount.py DAG_ID; checked by the test).
  recount_dag_id = "hashtag_recount"

  streaming_job_filter = "resource.type = \"dataflow_job\" AND resource.labels.job_name = \"hashtags-streaming\""

  web_logged_share_title = "Web: share of requests not answered from the in-process cache (1 - hit ratio)"

  # One chart per signal: [title, filter, aligner, reducer, group_by, threshold or null, y label].
  dashboard_charts = [
    ["Pub/Sub: oldest unacked message age (s)", "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\"", "ALIGN_MAX", "REDUCE_MAX", ["resource.label.subscription_id"], var.alert_oldest_unacked_seconds, "s"],
    ["Pub/Sub: backlog (undelivered messages)", "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = one_of(\"${join("\", \"", local.input_subscriptions)}\") AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\"", "ALIGN_MEAN", "REDUCE_SUM", ["resource.label.subscription_id"], var.alert_post_events_backlog_messages, "messages"],
    ["Dead letters waiting (DLQ inspect subscriptions)", "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = one_of(\"${join("\", \"", values(local.dlq_subscriptions))}\") AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\"", "ALIGN_MAX", "REDUCE_SUM", ["resource.label.subscription_id"], null, "messages"],
    ["Streaming job: data freshness (s)", "${local.streaming_job_filter} AND metric.type = \"dataflow.googleapis.com/job/data_watermark_age\"", "ALIGN_MAX", "REDUCE_MAX", ["resource.label.job_name"], var.alert_data_freshness_seconds, "s"],
    ["Streaming job: system lag (s)", "${local.streaming_job_filter} AND metric.type = \"dataflow.googleapis.com/job/system_lag\"", "ALIGN_MAX", "REDUCE_MAX", ["resource.label.job_name"], var.alert_system_lag_seconds, "s"],
    ["Streaming job: failed (1) / running (0)", "${local.streaming_job_filter} AND metric.type = \"dataflow.googleapis.com/job/is_failed\"", "ALIGN_MAX", "REDUCE_MAX", ["resource.label.job_name"], null, ""],
    ["Reconciliation runs by status", "metric.type = \"logging.googleapis.com/user/${google_logging_metric.recount_runs.name}\"", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.status"], null, "runs"],
    ["Reconciliation drift ratio (p99 per hour)", "metric.type = \"logging.googleapis.com/user/${google_logging_metric.recount_drift_ratio.name}\"", "ALIGN_PERCENTILE_99", "REDUCE_MAX", [], local.drift_threshold, "ratio"],
    ["Recount DAG runs by state", "resource.type = \"cloud_composer_workflow\" AND resource.labels.workflow_name = \"${local.recount_dag_id}\" AND metric.type = \"composer.googleapis.com/workflow/run_count\"", "ALIGN_SUM", "REDUCE_SUM", ["metric.label.state"], null, "runs"],
    ["Edge: requests by cache result (req/s)", "resource.type = \"https_lb_rule\" AND resource.labels.url_map_name = \"${google_compute_url_map.web.name}\" AND metric.type = \"loadbalancing.googleapis.com/https/request_count\"", "ALIGN_RATE", "REDUCE_SUM", ["metric.label.cache_result"], null, "req/s"],
    ["Cloud Run: requests by response class (req/s)", "${local.web_revision_filter} AND metric.type = \"run.googleapis.com/request_count\"", "ALIGN_RATE", "REDUCE_SUM", ["metric.label.response_code_class"], null, "req/s"],
    ["Cloud Run: p99 latency (ms)", "${local.web_revision_filter} AND metric.type = \"run.googleapis.com/request_latencies\"", "ALIGN_DELTA", "REDUCE_PERCENTILE_99", ["resource.label.service_name"], var.alert_web_p99_latency_ms, "ms"],
    ["Web: requests not answered from the in-process cache, by cache state (req/s)", "metric.type = \"logging.googleapis.com/user/${google_logging_metric.web_requests.name}\"", "ALIGN_RATE", "REDUCE_SUM", ["metric.label.cache"], null, "req/s"],
    ["Bigtable: CPU load per cluster", "${local.bigtable_filter} AND metric.type = \"bigtable.googleapis.com/cluster/cpu_load\"", "ALIGN_MEAN", "REDUCE_MAX", ["resource.label.cluster"], var.alert_bigtable_cpu, "fraction"],
    ["Bigtable: hottest node CPU", "${local.bigtable_filter} AND metric.type = \"bigtable.googleapis.com/cluster/cpu_load_hottest_node\"", "ALIGN_MEAN", "REDUCE_MAX", ["resource.label.cluster"], var.alert_bigtable_hottest_node_cpu, "fraction"],
    ["Bigtable: storage utilisation", "${local.bigtable_filter} AND metric.type = \"bigtable.googleapis.com/cluster/storage_utilization\"", "ALIGN_MEAN", "REDUCE_MAX", ["resource.label.cluster"], var.alert_bigtable_storage, "fraction"],
  ]
}

resource "google_monitoring_dashboard" "hashtags" {
  dashboard_json = jsonencode({
    displayName = "Hashtags (${var.environment})"
    mosaicLayout = {
      columns = 12
      tiles = concat([
        for i, c in local.dashboard_charts : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = c[0]
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = c[1]
                    aggregation = {
                      alignmentPeriod    = c[2] == "ALIGN_PERCENTILE_99" ? "3600s" : "60s"
                      perSeriesAligner   = c[2]
                      crossSeriesReducer = c[3]
                      groupByFields      = c[4]
                    }
                  }
                }
              }]
              thresholds = c[5] == null ? [] : [{ value = c[5] }]
              yAxis      = { label = c[6], scale = "LINEAR" }
            }
          }
        }
        ], [{
          # 1 - this = the in-process cache hit ratio: quick hits are the requests without a line
          xPos   = (length(local.dashboard_charts) % 2) * 6
          yPos   = floor(length(local.dashboard_charts) / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = local.web_logged_share_title
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilterRatio = {
                    numerator = {
                      filter      = "${local.web_revision_filter} AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.web_requests.name}\""
                      aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM", groupByFields = [] }
                    }
                    denominator = {
                      filter      = "${local.web_revision_filter} AND metric.type = \"run.googleapis.com/request_count\""
                      aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE", crossSeriesReducer = "REDUCE_SUM", groupByFields = [] }
                    }
                  }
                }
              }]
              yAxis = { label = "share", scale = "LINEAR" }
            }
          }
      }])
    }
  })

  depends_on = [google_project_service.enabled]
}
