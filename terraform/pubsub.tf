# Topics and subscriptions of the streaming job. Names: hashtags/settings.py.
#
# Publishers set ordering key = user_id on post-events, so the streaming subscription enables
# message ordering: a user's publish and delete arrive in order (Dataflow's Pub/Sub source
# honours ordering keys). Parse/validation failures are dead-lettered by the job itself (with the
# reason as an attribute) onto the -dlq topics; messages that repeatedly fail delivery (nack or
# ack deadline exceeded, e.g. a crashing worker) are dead-lettered there by Pub/Sub.

resource "google_pubsub_topic" "post_events" {
  name                       = "post-events"
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_topic" "top_posts" {
  name                       = "top-posts"
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_topic" "post_events_dlq" {
  name                       = "post-events-dlq"
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_topic" "top_posts_dlq" {
  name                       = "top-posts-dlq"
  message_retention_duration = var.pubsub_message_retention
}

resource "google_pubsub_subscription" "post_events_streaming" {
  name  = "post-events-streaming"
  topic = google_pubsub_topic.post_events.id

  enable_message_ordering    = true
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

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.post_events_dlq.id
    max_delivery_attempts = var.pubsub_max_delivery_attempts
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

resource "google_pubsub_subscription" "top_posts_streaming" {
  name  = "top-posts-streaming"
  topic = google_pubsub_topic.top_posts.id

  # No ordering: the newest computed_at wins on read, so top-posts updates commute.
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

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.top_posts_dlq.id
    max_delivery_attempts = var.pubsub_max_delivery_attempts
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

# Dead letters are kept for inspection (and replay, by re-publishing) on these subscriptions.
resource "google_pubsub_subscription" "post_events_dlq_inspect" {
  name  = "post-events-dlq-inspect"
  topic = google_pubsub_topic.post_events_dlq.id

  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "top_posts_dlq_inspect" {
  name  = "top-posts-dlq-inspect"
  topic = google_pubsub_topic.top_posts_dlq.id

  ack_deadline_seconds       = 60
  message_retention_duration = var.pubsub_message_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

# --- Dead lettering: the Pub/Sub service agent publishes to the DLQ topics and acks (subscribes
# to) the source subscriptions. Without these grants Pub/Sub cannot forward dead letters.
locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  dead_letter_topics = {
    post_events = google_pubsub_topic.post_events_dlq.id
    top_posts   = google_pubsub_topic.top_posts_dlq.id
  }
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.dead_letter_topics

  topic  = each.value
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = {
    post_events = google_pubsub_subscription.post_events_streaming.id
    top_posts   = google_pubsub_subscription.top_posts_streaming.id
  }

  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
