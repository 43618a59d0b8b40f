"""Create the Pub/Sub topics/subscriptions and the Bigtable table (emulators or a real project).

The same names as terraform (hashtags/settings.py); the table comes from hashtag_store.create_table,
the one place the column families and GC rules are applied."""
from __future__ import annotations

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from hashtag_store import create_table
from hashtag_store.bigtable import create_post_state_table
from hashtags.settings import (
    POST_EVENTS_DLQ_SUBSCRIPTION,
    POST_STATE_TABLE,
    TOP_POSTS_DLQ_SUBSCRIPTION,
    Settings,
)


def ensure_pubsub(s: Settings) -> None:
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    for topic in (s.post_events_topic, s.top_posts_topic, s.post_events_dlq_topic, s.top_posts_dlq_topic):
        try:
            publisher.create_topic(name=s.topic_path(topic))
        except gexc.AlreadyExists:
            pass
    # Unordered, like production (terraform/pubsub.tf says why): the counts do not depend on
    # delivery order (sums; the reconciliation orders by event time). Production also splits
    # post-events by the event_time attribute (a filtered subscription for Dataflow, which takes
    # event time from it); the local job stamps from the body, so one unfiltered subscription here.
    subs = [
        (s.post_events_subscription, s.post_events_topic, False),
        (s.top_posts_subscription, s.top_posts_topic, False),
        (POST_EVENTS_DLQ_SUBSCRIPTION, s.post_events_dlq_topic, False),
        (TOP_POSTS_DLQ_SUBSCRIPTION, s.top_posts_dlq_topic, False),
    ]
    for sub, topic, ordered in subs:
        try:
            subscriber.create_subscription(request={
                "name": s.subscription_path(sub), "topic": s.topic_path(topic),
                "ack_deadline_seconds": 60, "enable_message_ordering": ordered})
        except gexc.AlreadyExists:
            pass
    subscriber.close()


def ensure_all(s: Settings) -> None:
    ensure_pubsub(s)
    create_table(s.project, s.bigtable_instance, s.table)
    create_post_state_table(s.project, s.bigtable_instance, POST_STATE_TABLE)


def streaming_args(s: Settings, archive_path: str, *, early_firing_seconds: int = 5,
                   read: str = "all") -> list[str]:
    """Arguments for pipelines.streaming_main on the local runner against these resources."""
    return [f"--read={read}",
        "--runner=BundleBasedDirectRunner", "--streaming",
        f"--project={s.project}",
        f"--bigtable_instance={s.bigtable_instance}", f"--bigtable_table={s.table}",
        f"--post_events_subscription={s.subscription_path(s.post_events_subscription)}",
        f"--top_posts_subscription={s.subscription_path(s.top_posts_subscription)}",
        f"--post_events_dlq_topic={s.topic_path(s.post_events_dlq_topic)}",
        f"--top_posts_dlq_topic={s.topic_path(s.top_posts_dlq_topic)}",
        f"--archive_path={archive_path}",
        f"--early_firing_seconds={early_firing_seconds}",
        f"--late_firing_seconds={early_firing_seconds}",
        "--archive_window_seconds=10",
        "--archive_shards=1",  # ~200 events/s at most on the local runner: one file per window
    ]
