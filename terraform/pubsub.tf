# Topics and subscriptions of the streaming job. Names: hashtags/settings.py, read through local.code
# (locals.tf).
#
# The subscriptions the Dataflow job reads have NO message ordering and NO Pub/Sub dead-letter
# policy:
# - ordering: not for a subscription Dataflow reads (Pub/Sub's documentation, as issue 8's review
#   cites it): Dataflow processes a subscription's messages in parallel and regroups them in
#   windows, so delivery order is not kept in the pipeline anyway; the counts are sums and commute,
#   and the reconciliation orders by event time. Ordering would only add head-of-line blocking per
#   key (Pub/Sub's ordering page: a redelivery re-sends every later message of its key).
# - dead-letter policy: Dataflow acknowledges a message only after its first fused stage has
#   committed (Dataflow docs, "Streaming with Pub/Sub"), so worker restarts, autoscaling and
#   rebalancing redeliver VALID messages; after max_delivery_attempts Pub/Sub would forward such a
#   message to the DLQ topic: lost from counts and archive alike. Dead letters are the job's own
#   output instead, each with its reason (dlq_reason), published by the job to the -dlq topics.
#
# Event time: the job reads post-events with timestamp_attribute = "event_time"; Dataflow takes the
# element timestamp inside its source, before any of the job's code could dead-letter a message
# without one. post-events-streaming therefore only delivers messages carrying the attribute, and
# post-events-unstamped the others, which the job reads without a timestamp attribute and
# dead-letters whole (pipelines/streaming_main.py read_post_events; docs/DEPLOY.md). Pub/Sub
# acknowledges a message a subscription's filter rejects, so the two filters are exact complements:
# every message reaches exactly one of them. A filter cannot be changed after creation (terraform
# replaces the subscription: see docs/DEPLOY.md before applying a change here).

resource "google_pubsub_topic" "post_events" {
  name                       = local.code.pubsub.topics.post_events
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_topic" "top_posts" {
  name                       = local.code.pubsub.topics.top_posts
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_topic" "post_events_dlq" {
  name                       = local.code.pubsub.topics.post_events_dlq
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_topic" "top_posts_dlq" {
  name                       = local.code.pubsub.topics.top_posts_dlq
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_subscription" "post_events_streaming" {
  name  = local.code.pubsub.subscriptions.post_events
  topic = google_pubsub_topic.post_events.id

  filter                     = "attributes:${local.code.pubsub.event_time_attribute}"
  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expire, even while the job is stopped
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
}

# The complement of post-events-streaming's filter: post events without an event_time attribute.
resource "google_pubsub_subscription" "post_events_unstamped" {
  name  = local.code.pubsub.subscriptions.post_events_unstamped
  topic = google_pubsub_topic.post_events.id

  filter                     = "NOT attributes:${local.code.pubsub.event_time_attribute}"
  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
}

resource "google_pubsub_subscription" "top_posts_streaming" {
  name  = local.code.pubsub.subscriptions.top_posts
  topic = google_pubsub_topic.top_posts.id

  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
}

# Dead letters are kept for inspection (and replay, by re-publishing) on these subscriptions.
resource "google_pubsub_subscription" "post_events_dlq_inspect" {
  name  = local.code.pubsub.subscriptions.post_events_dlq
  topic = google_pubsub_topic.post_events_dlq.id

  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "top_posts_dlq_inspect" {
  name  = local.code.pubsub.subscriptions.top_posts_dlq
  topic = google_pubsub_topic.top_posts_dlq.id

  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

locals {
  # The topics the job publishes its dead letters to (grants in iam.tf).
  dead_letter_topics = {
    post_events = google_pubsub_topic.post_events_dlq.id
    top_posts   = google_pubsub_topic.top_posts_dlq.id
  }
}
