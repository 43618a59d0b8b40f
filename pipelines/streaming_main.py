"""The streaming job: Pub/Sub → hashtag counts + top posts → Bigtable, and the post-event archive.

    python -m pipelines.streaming_main --runner=BundleBasedDirectRunner --streaming \
        --project=local-hashtags --bigtable_instance=local --bigtable_table=hashtags \
        --post_events_subscription=projects/local-hashtags/subscriptions/post-events-streaming \
        --top_posts_subscription=projects/local-hashtags/subscriptions/top-posts-streaming \
        --post_events_dlq_topic=projects/local-hashtags/topics/post-events-dlq \
        --top_posts_dlq_topic=projects/local-hashtags/topics/top-posts-dlq \
        --archive_path=.run/archive

On Dataflow: ``--runner=DataflowRunner --region=… --temp_location=gs://… --sdk_container_image=<the
streaming image> --count_generation=<n> --job_name=hashtags-streaming-g<n> --bigtable_app_profile=writer``,
launched as a Flex Template from that same image, whose workers install nothing at start-up
(docs/DEPLOY.md). A job launched by hand carries its generation in its name, so that an ``--update`` cannot change it
(:func:`check_update_keeps_generation`; terraform pins it instead); every Bigtable write goes through the app profile given
(pipelines/bigtable_write.py). Locally, SIGTERM or Ctrl-C stop the job without loss
(pipelines/local_reader.py). How post events are read and stamped depends on
the runner, decided in ONE place: :func:`read_post_events`.
"""
from __future__ import annotations

import logging
import re
import signal
import sys
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, ReadFromPubSub, WriteToPubSub
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
from apache_beam.transforms import trigger, window

from hashtags import settings
from pipelines import local_reader, local_runner, trends
from pipelines.options import StreamingOptions, event_bounds
from pipelines.archive import ArchiveEvents
from pipelines.bigtable_write import WriteRows
from pipelines.streaming import HourCountRow, TopPostsRow, WindowedTagCounts
from pipelines.transforms import DEAD, ParsePostEvents, ParseTopPosts, dead_letter

log = logging.getLogger(__name__)


def build(p: beam.Pipeline, opts: StreamingOptions, project: str) -> None:
    bt = dict(project_id=opts.bigtable_project or project, instance_id=opts.bigtable_instance,
              table_id=opts.bigtable_table, app_profile_id=opts.bigtable_app_profile)
    if opts.read in ("all", "post-events"):
        if not opts.post_events_subscription:
            raise SystemExit("--post_events_subscription is required")
        build_post_events(p, opts, bt)
    if opts.read in ("all", "top-posts") and opts.top_posts_subscription:
        build_top_posts(p, opts, bt)


EVENT_TIME_ATTRIBUTE = "event_time"  # DESIGN.md "Messages": RFC 3339, the event's Beam timestamp
EVENT_ID_ATTRIBUTE = "event_id"  # unique per event: Dataflow's de-duplication key


def on_dataflow(p: beam.Pipeline) -> bool:
    return isinstance(p.runner, DataflowRunner)  # TestDataflowRunner is a subclass


class PostEventsInput(NamedTuple):
    events: beam.PCollection  # valid PostEvents, timestamped with their event time
    dead: tuple  # PCollections of dead letters (PubsubMessage)


def read_post_events(p: beam.Pipeline, opts: StreamingOptions) -> PostEventsInput:
    """THE choice of how post events are read and stamped, by runner (the transform names are the
    same on every runner, so the graph stays update-compatible).

    On Dataflow: ``ReadFromPubSub(timestamp_attribute="event_time", id_label="event_id")``. The
    attribute is the element's timestamp, so the watermark follows EVENT time (Dataflow's source
    estimates it from the attribute values, not from publish time), and Dataflow drops a
    redelivered or re-published message whose ``event_id`` it has already seen. The parse step does
    not re-stamp (``stamp=False``: the attribute is authoritative, and a DoFn that moves elements
    earlier than the source's timestamp hides late data from the watermark) and requires the
    attributes, dead-lettering a message whose attributes disagree with its body
    (``require_attributes=True``).

    Locally (BundleBasedDirectRunner, any other runner): no ``id_label`` (the DirectRunner raises
    NotImplementedError for it: runners/direct/transform_evaluator.py) and no
    ``timestamp_attribute`` either: its Pub/Sub evaluator raises ``ValueError("Bad timestamp
    value")`` inside the source for an unparseable attribute, which kills the job (read in Beam
    2.77's transform_evaluator.py). The body's ``event_time`` stamps the event after validation;
    the local windows allow lateness for that (LOCAL-GCP.md).

    A message whose ``event_time`` attribute is missing or unparseable never reaches our code on
    Dataflow: the timestamp is taken inside the source. Dataflow's Pub/Sub source is private and
    documents nothing for that case; Beam's reference source fails on both
    (``PubsubClient.extractTimestamp``: "PubSub message is missing a value for timestamp attribute",
    "Cannot interpret value of attribute … as timestamp"), and a read that always fails is retried
    and stalls a streaming job. So: the Dataflow subscription delivers only messages that carry
    the attribute (filter ``attributes:event_time``, terraform/pubsub.tf); the others go to a second
    subscription (``NOT attributes:event_time``) that this job reads WITHOUT a timestamp attribute
    and dead-letters whole, with the reason. An attribute that is present but unparseable is kept
    out by the publisher (docs/DEPLOY.md "Event time on Dataflow")."""
    subscription = opts.post_events_subscription
    if not on_dataflow(p):
        messages = p | "ReadPostEvents" >> ReadFromPubSub(subscription=subscription, with_attributes=True)
        parsed = messages | "ParsePostEvents" >> ParsePostEvents(stamp=True, bounds=event_bounds(opts))
        return PostEventsInput(parsed.events, (parsed.dead,))
    messages = p | "ReadPostEvents" >> ReadFromPubSub(
        subscription=subscription, with_attributes=True,
        timestamp_attribute=EVENT_TIME_ATTRIBUTE, id_label=EVENT_ID_ATTRIBUTE)
    parsed = messages | "ParsePostEvents" >> ParsePostEvents(stamp=False, require_attributes=True,
                                                             bounds=event_bounds(opts))
    dead = [parsed.dead]
    if opts.post_events_unstamped_subscription:
        dead.append(
            p | "ReadUnstampedPostEvents" >> ReadFromPubSub(
                subscription=opts.post_events_unstamped_subscription, with_attributes=True)
            | "UnstampedDeadLetters" >> beam.Map(_unstamped_dead_letter))
    return PostEventsInput(parsed.events, tuple(dead))


def _unstamped_dead_letter(message: PubsubMessage) -> PubsubMessage:
    return dead_letter(message.data or b"", message.attributes,
                       f"no {EVENT_TIME_ATTRIBUTE} attribute (Dataflow takes event time from it)", "post-events")


def write_dead_letters(dead: list, topic: str | None, label: str) -> None:
    """Every dead letter of one source to its DLQ topic (or the log when no topic is given).

    Each input is re-windowed into the global window first: the row dead letters come out of the
    hour windows, and a Flatten needs one windowing on all its inputs.

    On Dataflow: ``WriteToPubSub`` (the service's own sink). Locally: ``_PublishDeadLetters``, one
    Publish RPC per bundle through the process's shared publisher. Beam's local writer
    (``_PubSubWriteDoFn``, io/gcp/pubsub.py) builds a ``PublisherClient`` in ``setup``, which the
    local runner calls for every bundle, and that runner schedules the Flatten's EMPTY bundles too
    (runners/direct/executor.py ``schedule_consumers``): ~800 clients for test_streaming_job's
    2,400 events, nearly all for nothing (pipelines/clients.py)."""
    merged = ([pc | f"{label}DeadLettersUnwindowed{i}" >> beam.WindowInto(window.GlobalWindows())
               for i, pc in enumerate(dead)]
              | f"{label}DeadLetters" >> beam.Flatten())
    if topic and on_dataflow(merged.pipeline):
        merged | f"{label}DLQ" >> WriteToPubSub(topic, with_attributes=True)
    elif topic:
        merged | f"{label}DLQ" >> beam.ParDo(_PublishDeadLetters(topic))
    else:
        merged | f"Log{label}DeadLetters" >> beam.Map(
            lambda m: log.warning("dead letter: %s", m.attributes.get("dlq_reason")))


class _PublishDeadLetters(beam.DoFn):
    """The local runner's dead-letter writer: a bundle's messages in Publish RPCs of at most
    ``BATCH_BYTES`` / ``BATCH_MESSAGES`` (Pub/Sub's request limits are 10 MB and 1,000 messages),
    through the raw RPC: the attributes are passed as a map, so any attribute name a hostile
    publisher chose (``topic``, ``ordering_key``…) is sent as data, never as a keyword. A failed
    publish fails the bundle, and the runner retries it."""

    BATCH_BYTES = 5_000_000
    BATCH_MESSAGES = 1000

    def __init__(self, topic: str):
        self.topic = topic

    def start_bundle(self):
        self._batch, self._bytes = [], 0

    def process(self, message: PubsubMessage):
        size = len(message.data or b"") + sum(len(k) + len(v) for k, v in (message.attributes or {}).items())
        if self._batch and (self._bytes + size > self.BATCH_BYTES or len(self._batch) >= self.BATCH_MESSAGES):
            self._publish()
        self._batch.append({"data": message.data or b"", "attributes": dict(message.attributes or {})})
        self._bytes += size

    def finish_bundle(self):
        if self._batch:
            self._publish()

    def _publish(self):
        from pipelines.clients import publisher

        publisher().api.publish(request={"topic": self.topic, "messages": self._batch}, timeout=60)
        self._batch, self._bytes = [], 0


def build_post_events(p: beam.Pipeline, opts: StreamingOptions, bt: dict) -> None:
    posts = read_post_events(p, opts)
    rows = (
        posts.events
        | "HourCounts" >> WindowedTagCounts(
            opts.window_seconds, opts.allowed_lateness_seconds, opts.early_firing_seconds,
            late_trigger=trigger.AfterProcessingTime(opts.late_firing_seconds))
        | "HourRows" >> beam.ParDo(HourCountRow(opts.count_generation)).with_outputs(DEAD, main="rows")
    )
    rows.rows | "WriteCounts" >> WriteRows(**bt)
    dead = [*posts.dead, rows[DEAD],
            *trends.build(posts.events, opts, bt, clock_watermark=not on_dataflow(posts.events.pipeline))]
    if opts.archive_path:
        archived = posts.events | "Archive" >> ArchiveEvents(
            opts.archive_path, opts.archive_window_seconds, shards=opts.archive_shards,
            max_lines_per_file=opts.archive_max_lines_per_file)
        dead.append(archived.dead)
    write_dead_letters(dead, opts.post_events_dlq_topic, "PostEvents")


def build_top_posts(p: beam.Pipeline, opts: StreamingOptions, bt: dict) -> None:
    top = (p | "ReadTopPosts" >> ReadFromPubSub(subscription=opts.top_posts_subscription,
                                                with_attributes=True)
           | "ParseTopPosts" >> ParseTopPosts(bounds=event_bounds(opts)))
    rows = top.updates | "TopRows" >> beam.ParDo(TopPostsRow()).with_outputs(DEAD, main="rows")
    rows.rows | "WriteTopPosts" >> WriteRows(**bt)
    write_dead_letters((top.dead, rows[DEAD]), opts.top_posts_dlq_topic, "TopPosts")


def generation_job_name(base: str, generation: int) -> str:
    """The Dataflow job name that carries its count generation: ``<base>-g<generation>``."""
    return f"{base}-g{generation}"


_GENERATION_SUFFIX = re.compile(r"-g([0-9]+)$")


def check_update_keeps_generation(options: PipelineOptions) -> None:
    """An in-place update (``--update``) can never change the count generation (DESIGN.md "Count
    generations": a new generation needs new, empty window state, i.e. a new job).

    Dataflow updates the RUNNING job whose name is ``--job_name``. Two launch paths, one rule each:
    - by hand, the job is named :func:`generation_job_name` (``<base>-g<generation>``), and an update
      whose name carries ANOTHER generation is refused here (it would carry the running job's window
      state into the new generation's cells: every open hour counted twice);
    - terraform names the job ``hashtags-streaming`` (no suffix: one name for every generation, so
      Dataflow refuses a second active job) and pins ``count_generation`` with ``ignore_changes``, so
      its in-place updates relaunch with the running job's generation (terraform/dataflow.tf,
      tests/unit/test_terraform_streaming_job.py).
    An update with no job name names no running job and is refused too."""
    gcp = options.view_as(GoogleCloudOptions)
    if not gcp.update:
        return
    generation = options.view_as(StreamingOptions).count_generation
    named = _GENERATION_SUFFIX.search(gcp.job_name or "")
    if not gcp.job_name or (named and int(named.group(1)) != generation):
        raise SystemExit(f"--update with --count_generation={generation} and job name {gcp.job_name!r}: an "
                         "in-place update keeps the running job's generation (a job named "
                         f"{generation_job_name('<base>', generation)!r}); a new generation is a new job "
                         "(drain, then launch)")


def make_pipeline(argv: list[str] | None = None) -> beam.Pipeline:
    options = PipelineOptions(argv)
    options.view_as(StandardOptions).streaming = True
    project = options.view_as(GoogleCloudOptions).project or settings.LOCAL_PROJECT
    options.view_as(GoogleCloudOptions).project = project
    check_update_keeps_generation(options)
    p = beam.Pipeline(options=options)
    if not on_dataflow(p):
        local_runner.install()  # a stoppable local read, DoFn introspection once (its module doc)
    build(p, options.view_as(StreamingOptions), project)
    return p


def run(argv: list[str] | None = None):
    """Build and start the job; returns the PipelineResult (a streaming run returns at once)."""
    return make_pipeline(argv).run()


def start_fields(argv: list[str], result) -> dict:
    """The ``streaming_job_start`` record (hashtag_ops.logs): what this job reads and writes."""
    options = PipelineOptions(argv)
    opts, gcp = options.view_as(StreamingOptions), options.view_as(GoogleCloudOptions)
    try:
        job_id = result.job_id()  # Dataflow's result only, and only once the job was created
    except Exception:
        job_id = None
    return {"runner": type(result).__name__, "job_name": gcp.job_name, "job_id": job_id,
            "project": gcp.project or settings.LOCAL_PROJECT,
            "count_generation": opts.count_generation, "read": opts.read,
            "post_events_subscription": opts.post_events_subscription,
            "top_posts_subscription": opts.top_posts_subscription,
            "bigtable": f"{opts.bigtable_instance}/{opts.bigtable_table}",
            "bigtable_app_profile": opts.bigtable_app_profile,
            "event_time_floor": opts.event_time_floor, "max_future_skew_seconds": opts.max_future_skew_seconds}


def main(argv: list[str] | None = None) -> int:
    from hashtag_ops import logs

    logs.setup("streaming")
    argv = sys.argv[1:] if argv is None else argv
    p = make_pipeline(argv)
    local = not on_dataflow(p)
    if local:
        # SIGTERM (devstack's stop, `make relaunch`) and Ctrl-C: stop pulling, fire every open
        # window, write the archive, then exit (pipelines/local_reader.py). A second signal is
        # the same request: a job that must die now gets SIGKILL.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: _stop_locally(signum))
    result = p.run()
    logs.log_event(log, logs.STREAMING_JOB_START, f"streaming job started ({type(result).__name__}); waiting",
                   **start_fields(argv, result))
    try:
        result.wait_until_finish()
    except KeyboardInterrupt:  # Dataflow launcher only: the local job handles SIGINT above
        log.info("cancelling")
        result.cancel()
        return 0
    if local:
        log.info("streaming job stopped: everything it pulled was written")
    return 0


def _stop_locally(signum: int) -> None:
    log.info("%s: stopping the local job (no more pulls; flushing open windows and the archive)",
             signal.Signals(signum).name)
    local_reader.request_stop()


if __name__ == "__main__":
    sys.exit(main())
