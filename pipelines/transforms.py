"""PTransforms shared by the streaming job and the batch recount.

``CountTags`` is THE count transform: both jobs turn post events into per-tag counts with it, so the
extraction (hashtags.distinct_tags) and the counting rule (a post counts once per distinct key,
+1 published / -1 deleted) cannot diverge between the live count and the nightly repair.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterable, Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from hashtags import layout
from hashtags.messages import PostEvent, Rejected, TopPostsUpdate, parse_post_event, parse_top_posts

DEAD = "dead"
MAX_REASON_CHARS = 500  # Pub/Sub attribute values are limited to 1024 bytes


class Tally(NamedTuple):
    """A tag's count in one window (or in the whole recount) and the first spelling seen."""

    count: int
    display: str | None


def dead_letter(data: bytes, attributes: dict | None, reason: str, source: str) -> PubsubMessage:
    """The DLQ message: the ORIGINAL payload bytes untouched, the reason in attributes."""
    attrs = dict(attributes or {})
    attrs["dlq_reason"] = reason[:MAX_REASON_CHARS]
    attrs["dlq_source"] = source
    return PubsubMessage(data=data, attributes=attrs)


def _data_and_attributes(element) -> tuple[bytes, dict]:
    if isinstance(element, PubsubMessage):
        return element.data or b"", dict(element.attributes or {})
    if isinstance(element, str):
        return element.encode("utf-8", "surrogatepass"), {}
    return bytes(element), {}


class ParsePostEventsFn(beam.DoFn):
    """PubsubMessage | bytes → PostEvent (timestamped with its event_time), rejects → DEAD output."""

    def __init__(self, source: str = "post-events", stamp: bool = True):
        self._source = source
        self._stamp = stamp
        self._valid = Metrics.counter("hashtags", "post_events_valid")
        self._rejected = Metrics.counter("hashtags", "post_events_rejected")

    def process(self, element):
        try:
            data, attributes = _data_and_attributes(element)
            parsed = parse_post_event(data, attributes)
        except Exception as e:  # parse_post_event never raises by design; belt and braces
            data, attributes = (element if isinstance(element, bytes) else b""), {}
            parsed = Rejected(f"internal parse error: {type(e).__name__}: {e}")
        if isinstance(parsed, Rejected):
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(data, attributes, parsed.reason, self._source))
            return
        self._valid.inc()
        yield TimestampedValue(parsed, parsed.event_time.timestamp()) if self._stamp else parsed


class ParseTopPostsFn(beam.DoFn):
    def __init__(self, source: str = "top-posts"):
        self._source = source
        self._rejected = Metrics.counter("hashtags", "top_posts_rejected")

    def process(self, element):
        data, attributes = _data_and_attributes(element)
        parsed = parse_top_posts(data)
        if isinstance(parsed, Rejected):
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(data, attributes, parsed.reason, self._source))
        else:
            yield parsed


class ParsePostEvents(beam.PTransform):
    """Outputs a tuple-like result: ``result.events`` (PostEvent) and ``result.dead`` (PubsubMessage)."""

    def __init__(self, stamp: bool = True):
        super().__init__()
        self._stamp = stamp

    def expand(self, messages):
        out = messages | "Parse" >> beam.ParDo(ParsePostEventsFn(stamp=self._stamp)).with_outputs(DEAD, main="events")
        return out


class ParseTopPosts(beam.PTransform):
    def expand(self, messages):
        return messages | "Parse" >> beam.ParDo(ParseTopPostsFn()).with_outputs(DEAD, main="updates")


_NO_SPELLING = (float("inf"), None)


def tag_deltas(event: PostEvent) -> Iterator[tuple[str, tuple[int, float, str | None]]]:
    """A post's contribution: one (key, (delta, first-seen time, spelling)) per DISTINCT key.

    ``#Tag #tag #TAG`` counts once. Deletes carry no spelling (they must not set the display)."""
    delta = event.delta
    if delta > 0:
        ts = event.event_time.timestamp()
        for key, spelling in event.tags():
            yield key, (delta, ts, spelling)
    else:
        for key, _ in event.tags():
            yield key, (delta, float("inf"), None)


class TallyFn(beam.CombineFn):
    """Sum of deltas + earliest spelling. Associative and commutative, so Beam lifts it into a
    combiner before the shuffle: write amplification is (distinct tags × firings), not events × tags."""

    def create_accumulator(self):
        return (0, float("inf"), None)

    def add_input(self, acc, value):
        n, ts, sp = acc
        d, vts, vsp = value
        if vts < ts or (vts == ts and vsp is not None and (sp is None or vsp < sp)):
            return (n + d, vts, vsp)
        return (n + d, ts, sp)

    def merge_accumulators(self, accs):
        n, ts, sp = 0, float("inf"), None
        for an, ats, asp in accs:
            n += an
            if ats < ts or (ats == ts and asp is not None and (sp is None or asp < sp)):
                ts, sp = ats, asp
        return (n, ts, sp)

    def extract_output(self, acc):
        return Tally(acc[0], acc[2])


class CountTags(beam.PTransform):
    """PCollection[PostEvent] → PCollection[(key, Tally)], per window of the input.

    The one count transform shared by the streaming job (hour windows) and the recount (global)."""

    def expand(self, events):
        return (
            events
            | "TagDeltas" >> beam.FlatMap(tag_deltas)
            | "SumPerTag" >> beam.CombinePerKey(TallyFn())
        )


def event_json_line(event: PostEvent) -> str:
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))


def archive_partition(event: PostEvent) -> str:
    """Archive folder for an event: ``dt=YYYY-MM-DD`` of its event time (UTC)."""
    return "dt=" + event.event_time.astimezone(layout.UTC).strftime("%Y-%m-%d")
