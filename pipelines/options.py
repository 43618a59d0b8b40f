"""Pipeline options of the streaming job (a PipelineOptions subclass, so Dataflow's launcher and
Flex Template parameters see them)."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from hashtags import settings


class StreamingOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--bigtable_project", default=None,
                            help="Project of the Bigtable instance (default: --project or the local project)")
        parser.add_argument("--bigtable_instance", default=settings.LOCAL_INSTANCE)
        parser.add_argument("--bigtable_table", default=settings.TABLE)
        parser.add_argument("--post_events_subscription", required=False,
                            help="projects/<p>/subscriptions/<s> of the post-events stream")
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
        parser.add_argument("--window_seconds", type=int, default=3600, help="Count window (1 h)")
        parser.add_argument("--allowed_lateness_seconds", type=int, default=6 * 3600,
                            help="How late an event may be and still update its hour cell")
        parser.add_argument("--early_firing_seconds", type=int, default=60,
                            help="Processing-time delay of early (speculative) firings")
        parser.add_argument("--late_firing_seconds", type=int, default=60,
                            help="Processing-time delay of late firings")
        parser.add_argument("--archive_window_seconds", type=int, default=300,
                            help="Archive files are cut every N seconds of processing time")
