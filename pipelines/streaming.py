"""The streaming job's graph, built from the shared transforms. ``streaming_main`` wires it to
Pub/Sub, Bigtable and the archive; tests wire the same pieces to TestStream and assert_that."""
from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration

from hashtag_store import mutations
from hashtags import layout
from pipelines.archive import ArchiveEvents  # noqa: F401  (moved to pipelines/archive.py)
from pipelines.transforms import DEAD, CountTags, Tally, dead_letter


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


def _row_dead_letter(record: dict, error: Exception, source: str):
    """A row that could not be built → a dead letter carrying what the row was built from (JSON,
    ASCII-escaped so any string, lone surrogates included, encodes) and the error as the reason."""
    data = json.dumps(record, ensure_ascii=True, default=str, separators=(",", ":")).encode("ascii")
    return beam.pvalue.TaggedOutput(DEAD, dead_letter(data, None, f"row not built: {type(error).__name__}: {error}",
                                                      source))


class HourCountRow(beam.DoFn):
    """HourCount → one DirectRow: ``counts:h.<generation>`` and meta:display at the window start.

    A row that cannot be built goes to the DEAD output (never an exception out of the DoFn: on
    Dataflow a bundle that always fails is retried forever and stalls the pipeline). Use with
    ``.with_outputs(DEAD, main="rows")``."""

    def __init__(self, generation: int = 0):
        layout.hour_column(generation)  # a bad generation fails at construction, not on a worker
        self.generation = generation
        self._rows = Metrics.counter("hashtags", "bigtable_hour_rows")
        self._failed = Metrics.counter("hashtags", "bigtable_hour_rows_failed")

    def process(self, element):
        try:
            row = mutations.hour_count_row(element.key, element.window_start, element.tally.count,
                                           element.tally.display, generation=self.generation)
        except Exception as e:  # any input: the DoFn must not raise
            self._failed.inc()
            yield _row_dead_letter({"key": element.key, "window_start": element.window_start.isoformat(),
                                    "count": element.tally.count, "display": element.tally.display,
                                    "generation": self.generation}, e, "hour-counts")
            return
        self._rows.inc()
        yield row


class TopPostsRow(beam.DoFn):
    """TopPostsUpdate → one DirectRow (top:posts at computed_at); unbuildable → DEAD output."""

    def __init__(self):
        self._rows = Metrics.counter("hashtags", "bigtable_top_rows")
        self._failed = Metrics.counter("hashtags", "bigtable_top_rows_failed")

    def process(self, update):
        try:
            row = mutations.top_posts_row(update)
        except Exception as e:  # any input: the DoFn must not raise
            self._failed.inc()
            yield _row_dead_letter({"hashtag": update.hashtag, "computed_at": str(update.computed_at),
                                    "posts": [[p.post_id, p.image_url] for p in update.posts]}, e, "top-posts-rows")
            return
        self._rows.inc()
        yield row
