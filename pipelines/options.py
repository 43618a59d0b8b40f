"""Pipeline options of the streaming job (a PipelineOptions subclass, so Dataflow's launcher and
Flex Template parameters see them)."""
from __future__ import annotations

import argparse
import datetime as dt

from apache_beam.options.pipeline_options import PipelineOptions

from hashtags import layout, messages, settings
from pipelines import archive


def _generation(value: str) -> int:
    """``--count_generation``: a non-negative decimal int (layout.hour_column's rule)."""
    try:
        gen = int(value)
        layout.hour_column(gen)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a count generation is a non-negative integer, got {value!r}")
    return gen


def _time_floor(value: str) -> str:
    """``--event_time_floor``: an RFC 3339 timestamp with offset, not before settings.EVENT_TIME_FLOOR
    (the recount re-parses the archive with that floor: an event archived under a lower one would be
    rejected there). Kept as the string: options are serialised to JSON for Dataflow."""
    ts = messages.parse_time(value)
    if ts is None:
        raise argparse.ArgumentTypeError(f"an RFC 3339 timestamp with offset, got {value!r}")
    if ts < settings.EVENT_TIME_FLOOR:
        raise argparse.ArgumentTypeError(f"{value!r} is before settings.EVENT_TIME_FLOOR "
                                         f"({settings.EVENT_TIME_FLOOR.isoformat()})")
    return value


def event_bounds(opts) -> messages.Bounds:
    """The event-time bounds the parse steps apply (issue 8: future or pre-floor events are dead letters)."""
    return messages.Bounds(messages.parse_time(opts.event_time_floor),
                           dt.timedelta(seconds=opts.max_future_skew_seconds))


class StreamingOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--bigtable_project", default=None,
                            help="Project of the Bigtable instance (default: --project or the local project)")
        parser.add_argument("--bigtable_instance", default=settings.LOCAL_INSTANCE)
        parser.add_argument("--bigtable_table", default=settings.TABLE)
        parser.add_argument("--bigtable_app_profile", default=None,
                            help="App profile of every Bigtable write (production: settings.WRITER_APP_PROFILE, "
                                 "single-cluster, so the panes of one cell are ordered by one cluster; default: "
                                 "the instance's default profile, what the emulator has)")
        parser.add_argument("--post_events_subscription", required=False,
                            help="projects/<p>/subscriptions/<s> of the post-events stream")
        parser.add_argument("--post_events_unstamped_subscription", required=False,
                            help="Dataflow only: projects/<p>/subscriptions/<s> of the post-events messages "
                                 "WITHOUT an event_time attribute (a filtered subscription); every message on "
                                 "it is dead-lettered (see streaming_main.read_post_events)")
        parser.add_argument("--top_posts_subscription", required=False,
                            help="projects/<p>/subscriptions/<s> of the top-posts stream (optional)")
        parser.add_argument("--post_events_dlq_topic", required=False, help="projects/<p>/topics/<t>")
        parser.add_argument("--top_posts_dlq_topic", required=False, help="projects/<p>/topics/<t>")
        parser.add_argument("--archive_path", required=False,
                            help="Folder (local path or gs://) of the post-event archive read by the recount")
        parser.add_argument("--read", choices=["all", "post-events", "top-posts"], default="all",
                            help="Which subscriptions this job reads (default both). The local stack runs "
                                 "one process per source: the DirectRunner blocks up to 30 s on a pull from "
                                 "an empty subscription, which stalls every other source in the process.")
        parser.add_argument("--count_generation", type=_generation, default=0,
                            help="Count generation of this job's hour cells (counts:h.<gen>): keep it for an "
                                 "in-place --update, bump it for a relaunch (drain + new job), so the new "
                                 "job's partial windows never overwrite the drained job's counts")
        parser.add_argument("--window_seconds", type=int, default=3600, help="Count window (1 h)")
        parser.add_argument("--allowed_lateness_seconds", type=int, default=6 * 3600,
                            help="How late an event may be and still update its hour cell")
        parser.add_argument("--early_firing_seconds", type=int, default=60,
                            help="Processing-time delay of early (speculative) firings")
        parser.add_argument("--late_firing_seconds", type=int, default=60,
                            help="Processing-time delay of late firings")
        parser.add_argument("--archive_window_seconds", type=int, default=300,
                            help="Archive files are cut every N seconds of processing time (N divides 86400); "
                                 "see pipelines/archive.py for the files-per-day bound")
        parser.add_argument("--archive_shards", type=int, default=archive.DEFAULT_SHARDS,
                            help="Archive files written in parallel per window (files per day scale with it); "
                                 "the default is sized for the seed's 100,000 posts/min (pipelines/archive.py)")
        parser.add_argument("--max_future_skew_seconds", type=int,
                            default=int(settings.MAX_FUTURE_SKEW.total_seconds()),
                            help="Events (and top-posts lists) timed more than this after the worker's clock "
                                 "are dead letters")
        parser.add_argument("--event_time_floor", type=_time_floor,
                            default=messages.format_time(settings.EVENT_TIME_FLOOR),
                            help="Events (and top-posts lists) timed before this RFC 3339 instant are dead "
                                 "letters; not before settings.EVENT_TIME_FLOOR, which the recount applies")
        parser.add_argument("--archive_max_lines_per_file", type=int, default=100_000,
                            help="An archive file is cut early when its pane reaches this many events")
