"""The streaming job: Pub/Sub → hashtag counts + top posts → Bigtable, and the post-event archive.

    python -m pipelines.streaming_main --runner=BundleBasedDirectRunner --streaming \
        --project=local-hashtags --bigtable_instance=local --bigtable_table=hashtags \
        --post_events_subscription=projects/local-hashtags/subscriptions/post-events-streaming \
        --top_posts_subscription=projects/local-hashtags/subscriptions/top-posts-streaming \
        --post_events_dlq_topic=projects/local-hashtags/topics/post-events-dlq \
        --top_posts_dlq_topic=projects/local-hashtags/topics/top-posts-dlq \
        --archive_path=.run/archive

On Dataflow: ``--runner=DataflowRunner --region=… --temp_location=gs://… --setup_file=./setup.py``
(see docs/DEPLOY.md; the Flex Template runs this same file).
"""
from __future__ import annotations

import logging
import sys

import apache_beam as beam
from apache_beam.io.gcp.bigtableio import WriteToBigTable
from apache_beam.io.gcp.pubsub import ReadFromPubSub, WriteToPubSub
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from apache_beam.transforms import trigger

from hashtags import settings
from pipelines.options import StreamingOptions
from pipelines.streaming import ArchiveEvents, HourCountRow, TopPostsRow, WindowedTagCounts
from pipelines.transforms import ParsePostEvents, ParseTopPosts

log = logging.getLogger(__name__)


def build(p: beam.Pipeline, opts: StreamingOptions, project: str) -> None:
    bt = dict(project_id=opts.bigtable_project or project, instance_id=opts.bigtable_instance,
              table_id=opts.bigtable_table)
    if opts.read in ("all", "post-events"):
        if not opts.post_events_subscription:
            raise SystemExit("--post_events_subscription is required")
        build_post_events(p, opts, bt)
    if opts.read in ("all", "top-posts") and opts.top_posts_subscription:
        build_top_posts(p, opts, bt)


def build_post_events(p: beam.Pipeline, opts: StreamingOptions, bt: dict) -> None:
    messages = p | "ReadPostEvents" >> ReadFromPubSub(subscription=opts.post_events_subscription,
                                                      with_attributes=True)
    parsed = messages | "ParsePostEvents" >> ParsePostEvents()
    if opts.post_events_dlq_topic:
        parsed.dead | "PostEventsDLQ" >> WriteToPubSub(opts.post_events_dlq_topic, with_attributes=True)
    else:
        parsed.dead | "LogPostEventDeadLetters" >> beam.Map(
            lambda m: log.warning("dead letter: %s", m.attributes.get("dlq_reason")))
    (
        parsed.events
        | "HourCounts" >> WindowedTagCounts(
            opts.window_seconds, opts.allowed_lateness_seconds, opts.early_firing_seconds,
            late_trigger=trigger.AfterProcessingTime(opts.late_firing_seconds))
        | "HourRows" >> beam.ParDo(HourCountRow())
        | "WriteCounts" >> WriteToBigTable(**bt)
    )
    if opts.archive_path:
        parsed.events | "Archive" >> ArchiveEvents(opts.archive_path, opts.archive_window_seconds)



def build_top_posts(p: beam.Pipeline, opts: StreamingOptions, bt: dict) -> None:
    top = (p | "ReadTopPosts" >> ReadFromPubSub(subscription=opts.top_posts_subscription,
                                                with_attributes=True)
           | "ParseTopPosts" >> ParseTopPosts())
    top.updates | "TopRows" >> beam.ParDo(TopPostsRow()) | "WriteTopPosts" >> WriteToBigTable(**bt)
    if opts.top_posts_dlq_topic:
        top.dead | "TopPostsDLQ" >> WriteToPubSub(opts.top_posts_dlq_topic, with_attributes=True)


def make_pipeline(argv: list[str] | None = None) -> beam.Pipeline:
    options = PipelineOptions(argv)
    options.view_as(StandardOptions).streaming = True
    project = options.view_as(GoogleCloudOptions).project or settings.LOCAL_PROJECT
    options.view_as(GoogleCloudOptions).project = project
    p = beam.Pipeline(options=options)
    build(p, options.view_as(StreamingOptions), project)
    return p


def run(argv: list[str] | None = None):
    """Build and start the job; returns the PipelineResult (a streaming run returns at once)."""
    return make_pipeline(argv).run()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    result = run(sys.argv[1:] if argv is None else argv)
    log.info("streaming job started (%s); waiting", type(result).__name__)
    try:
        result.wait_until_finish()
    except KeyboardInterrupt:
        log.info("cancelling")
        result.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
