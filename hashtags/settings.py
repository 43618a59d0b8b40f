"""Resource names and tunables: the single source of truth.

Every name used by the jobs, the web service, the local stack, the tests and terraform comes from
here (terraform is checked against these values by ``tests/unit/test_terraform.py``).
Pure: :func:`Settings.from_env` takes a mapping, it never reads ``os.environ`` itself.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Mapping

# --- Pub/Sub -------------------------------------------------------------------------------
POST_EVENTS_TOPIC = "post-events"
TOP_POSTS_TOPIC = "top-posts"
POST_EVENTS_DLQ_TOPIC = "post-events-dlq"
TOP_POSTS_DLQ_TOPIC = "top-posts-dlq"
# Subscriptions the streaming job reads, and the ones that keep dead letters for inspection.
POST_EVENTS_SUBSCRIPTION = "post-events-streaming"
# Production only: the post events WITHOUT an event_time attribute, which the Dataflow job
# dead-letters (its post-events subscription filters them out: pipelines/streaming_main.py).
POST_EVENTS_UNSTAMPED_SUBSCRIPTION = "post-events-unstamped"
TOP_POSTS_SUBSCRIPTION = "top-posts-streaming"
POST_EVENTS_DLQ_SUBSCRIPTION = "post-events-dlq-inspect"
TOP_POSTS_DLQ_SUBSCRIPTION = "top-posts-dlq-inspect"

# --- Bigtable ------------------------------------------------------------------------------
TABLE = "hashtags"
# Per-post state of the reconciliation (hashtags/post_state.py): one row per post, + the run records.
POST_STATE_TABLE = "post_state"
SERVING_APP_PROFILE = "serving"
# Single-cluster routing for every writer (streaming job, nightly) and the nightly's reads of its
# priors: "the newest pane wins" and "read what the last run wrote" need one cluster to order the
# writes of a cell (DESIGN.md "Bigtable routing"; terraform/bigtable.tf declares it).
WRITER_APP_PROFILE = "writer"

# --- Limits --------------------------------------------------------------------------------
MAX_TAG_LENGTH = 100  # characters of the tag as written (without '#'); longer tags are not counted
MAX_CAPTION_BYTES = 16 * 1024  # UTF-8 bytes
MAX_MESSAGE_BYTES = 64 * 1024  # a whole Pub/Sub payload
MAX_TOP_POSTS = 100
MAX_POST_ID_LENGTH = 128
MAX_URL_LENGTH = 2048
# Distinct tags counted per post (the first N keys in order of appearance), the same rule for a
# caption and for a delete's ``hashtags`` list, so a delete takes back exactly what its publish
# counted and one message can cause at most N count updates. A setting, not a job option: the
# streaming job and the recount must count with the same N.
MAX_TAGS_PER_POST = 30
# Event times (``event_time``, top-posts ``computed_at``) before the floor are dead letters: no post
# of the service is older, and it keeps every cell timestamp positive (Bigtable rejects pre-1970).
EVENT_TIME_FLOOR = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)
# ... and so are times more than this after the clock of the job that receives them (a year-2999
# event would add a permanent +1; a year-2999 computed_at would freeze a tag's top posts).
MAX_FUTURE_SKEW = _dt.timedelta(minutes=5)
# Related tags (hashtags/related.py, computed by the nightly reconciliation): a pair of tags must be
# on at least this many posts of the window to relate them; the window is this many days of arrivals.
RELATED_MIN_POSTS = 3
RELATED_WINDOW_DAYS = 7

# --- Local defaults (DESIGN.md "Local defaults") -------------------------------------------
LOCAL_PROJECT = "local-hashtags"
LOCAL_INSTANCE = "local"
LOCAL_PUBSUB_HOST = "localhost:8085"
LOCAL_BIGTABLE_HOST = "localhost:8086"
LOCAL_WEB_URL = "http://127.0.0.1:8080"
# The local stack's image URLs (https, so they pass production's validation); in dev mode the web
# service draws them itself (serving/devimages.py).
DEV_IMAGE_ORIGIN = "https://img.hashtags.test"


@dataclass(frozen=True)
class Settings:
    """Runtime configuration shared by every deployable; built from environment variables."""

    project: str = LOCAL_PROJECT
    bigtable_instance: str = LOCAL_INSTANCE
    table: str = TABLE
    app_profile: str | None = None
    post_events_topic: str = POST_EVENTS_TOPIC
    top_posts_topic: str = TOP_POSTS_TOPIC
    post_events_dlq_topic: str = POST_EVENTS_DLQ_TOPIC
    top_posts_dlq_topic: str = TOP_POSTS_DLQ_TOPIC
    post_events_subscription: str = POST_EVENTS_SUBSCRIPTION
    top_posts_subscription: str = TOP_POSTS_SUBSCRIPTION
    # Serving
    post_url_template: str = "https://example.com/p/{post_id}"
    image_origins: tuple[str, ...] = ()
    # Absolute base of canonical / og:url links and Mastodon's Tag ``url`` (HASHTAGS_PUBLIC_URL);
    # ``noindex`` asks robots not to index any tag page (e.g. a staging deployment).
    public_url: str = LOCAL_WEB_URL
    noindex: bool = False
    cache_ttl_seconds: float = 5.0
    # The page cache's budget per worker process (serving/cache.py: documents and rendered bodies,
    # stale copies included), HASHTAGS_PAGE_CACHE_BYTES; terraform's page_cache_bytes sets it. 64 MiB:
    # production runs 2 workers in a 1 GiB Cloud Run instance; a worker is ~100 MB resident before it
    # caches anything, and the crawl test measured the RSS growth per accounted cache byte
    # (docs/SERVING.md "Page cache"), so 2 x (100 + 64 x that) MB leaves room for the server process,
    # request buffers and gRPC. ~1,500 tags with every representation, ~4,000 with one.
    page_cache_bytes: int = 64 * 1024 * 1024
    browser_max_age: int = 30
    stale_while_revalidate: int = 300
    retry_after_seconds: int = 5
    # One structured ``http_request`` line per request (serving/access_log.py, HASHTAGS_ACCESS_LOG);
    # its CPU cost per request is in docs/BENCHMARKS.md "Request log (issue 10)".
    access_log: bool = True
    # The local stack's generated images (serving/devimages.py, HASHTAGS_DEV_IMAGES); never in production.
    dev_images: bool = False
    # Circuit breaker around the store reads (serving/breaker.py): this many StoreUnavailable in a
    # row open it; then no read for the cool-down, one probe read, closed again if that succeeds.
    breaker_failures: int = 5
    breaker_cool_down_seconds: float = 5.0
    # Batched page reads in flight per process (hashtag_store.bigtable._ReadCoalescer): more than one,
    # so a slow ReadRows delays only its own batch; few, so that batches stay large under load
    # (docs/BENCHMARKS.md "Web tier, long tail (issue 21)").
    read_batches_in_flight: int = 2
    # Whether a tag not yet reviewed (trend review "pending") may trend (serving/trends.py): on
    # locally; production sets HASHTAGS_TRENDS_WITHOUT_REVIEW=false (Mastodon's default: review first).
    trends_without_review: bool = True
    # How long a web process reuses its read of the trends row for the tag pages' "Trending" mark
    # (serving/trends.py TrendingTags; the list changes once a minute, a page body is cached 5 s more).
    trends_cache_seconds: float = 10.0
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    ENV_PREFIX = "HASHTAGS_"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        """Read ``HASHTAGS_<FIELD>`` variables (e.g. ``HASHTAGS_PROJECT``) from ``env``."""
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(cls.ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            default = f.default
            if isinstance(default, tuple):
                values[f.name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            elif isinstance(default, bool):
                values[f.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        return cls(**values)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"
