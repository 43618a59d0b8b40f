"""The streaming job's graph, built from the shared transforms. ``streaming_main`` wires it to
Pub/Sub, Bigtable and the archive; tests wire the same pieces to TestStream and assert_that."""
from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from hashtag_store import mutations
from hashtags import layout
from pipelines.transforms import CountTags, Tally, archive_partition, event_json_line


class WindowedTagCounts(beam.PTransform):
    """Post events (event-time stamped) → HourCount(key, window start, Tally, pane) per firing.

    FixedWindows(1 h); early firings every ``early`` seconds of processing time, on-time firing at the
    watermark, late firings for data up to ``allowed_lateness``; ACCUMULATING, so each firing carries
    the whole window's count and rewrites the same hour cell (idempotent SetCell)."""

    def __init__(self, window_seconds=3600, allowed_lateness_seconds=6 * 3600, early_firing_seconds=60,
                 late_trigger=None):
        super().__init__()
        self.window_seconds = window_seconds
        self.allowed_lateness = allowed_lateness_seconds
        self.early = early_firing_seconds
        # Tests pass AfterCount(1): a late AfterProcessingTime trigger stalls under TestStream.
        self.late_trigger = late_trigger or trigger.AfterProcessingTime(early_firing_seconds)

    def expand(self, events):
        return (
            events
            | "HourWindows" >> beam.WindowInto(
                window.FixedWindows(self.window_seconds),
                trigger=trigger.AfterWatermark(
                    early=trigger.AfterProcessingTime(self.early),
                    late=self.late_trigger),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=Duration(seconds=self.allowed_lateness))
            | "CountTags" >> CountTags()
            | "WithWindowStart" >> beam.ParDo(_WithWindowStart())
        )


class HourCount(NamedTuple):
    key: str
    window_start: dt.datetime
    tally: Tally
    pane_index: int  # 0, 1, … per window: later panes supersede earlier ones (accumulating)


class _WithWindowStart(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        key, tally = element
        start = dt.datetime.fromtimestamp(float(win.start), tz=layout.UTC)
        yield HourCount(key, start, tally, pane.index if pane is not None else 0)


class HourCountRow(beam.DoFn):
    """HourCount → one DirectRow: ``counts:h.<generation>`` and meta:display at the window start."""

    def __init__(self, generation: int = 0):
        layout.hour_column(generation)  # a bad generation fails at construction, not on a worker
        self.generation = generation
        self._rows = Metrics.counter("hashtags", "bigtable_hour_rows")

    def process(self, element):
        self._rows.inc()
        yield mutations.hour_count_row(element.key, element.window_start, element.tally.count,
                                       element.tally.display, generation=self.generation)


class TopPostsRow(beam.DoFn):
    def __init__(self):
        self._rows = Metrics.counter("hashtags", "bigtable_top_rows")

    def process(self, update):
        self._rows.inc()
        yield mutations.top_posts_row(update)


class _StampProcessingTime(beam.DoFn):
    def process(self, event):
        yield TimestampedValue(event, time.time())


def _archive_file_naming(root):
    """``dt=YYYY-MM-DD/events-<window start>-p<pane>-<shard>-<random>.jsonl``.

    The random part keeps a restarted job (same processing-time window) from overwriting a file;
    a duplicate line from a retried bundle is harmless, since the recount keeps one event per post."""

    def name(window, pane, shard_index, total_shards, compression, destination):
        # WriteToFiles only creates the root folder before its rename, which fails silently
        # (logged at debug) when the partition folder is missing: create it here. A no-op on GCS.
        try:
            FileSystems.mkdirs(FileSystems.join(root, destination))
        except IOError:
            pass  # exists
        start = int(window.start) if hasattr(window, "start") else 0
        pane_index = pane.index if pane is not None else 0
        return (f"{destination}/events-{start}-p{pane_index}-{shard_index or 0:03d}"
                f"-{uuid.uuid4().hex[:8]}.jsonl")

    return name


class ArchiveEvents(beam.PTransform):
    """Every valid post event → JSON lines under ``<path>/dt=YYYY-MM-DD/`` (event date).

    Windowed by PROCESSING time (each event is re-stamped with the wall clock, then cut into fixed
    windows of ``window_seconds``), never by event time, so an event of any age is archived even
    when the counting path dropped it as too late; the nightly recount repairs the count from here.
    (A global window with a repeated processing-time trigger was tried: on the local
    BundleBasedDirectRunner its panes lagged minutes behind under load.)"""

    def __init__(self, path: str, window_seconds: int = 300):
        super().__init__()
        self.path = path
        self.window_seconds = window_seconds

    def expand(self, events):
        return (
            events
            | "ProcessingTime" >> beam.ParDo(_StampProcessingTime())
            | "ArchiveWindows" >> beam.WindowInto(
                window.FixedWindows(self.window_seconds),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=24 * 3600))
            | "ToLines" >> beam.Map(lambda e: (archive_partition(e), event_json_line(e)))
            | "Write" >> fileio.WriteToFiles(
                path=self.path,
                destination=lambda kv: kv[0],
                sink=lambda dest: _LineSink(),
                file_naming=_archive_file_naming(self.path),
                shards=1,
            )
        )


class _LineSink(fileio.TextSink):
    def write(self, record):
        super().write(record[1])
