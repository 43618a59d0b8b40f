"""PTransforms shared by the streaming job and the batch recount.

``CountTags`` is THE count transform: both jobs turn post events into per-tag counts with it, so the
extraction (hashtags.distinct_tags) and the counting rule (a post counts once per distinct key,
+1 published / -1 deleted) cannot diverge between the live count and the nightly repair.

``ParsePostEvents`` / ``ParseTopPosts`` never raise, whatever the element (any bytes, str, attribute
map, or another type altogether): each element becomes exactly one parsed item or one dead letter
(issue 8). ``dead_letter`` always returns a message Pub/Sub accepts (see its limits below).
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from hashtags import layout
from hashtags.messages import (Bounds, PostEvent, Rejected, TopPostsUpdate, parse_post_event,
                               parse_top_posts)

DEAD = "dead"


class Tally(NamedTuple):
    """A tag's count in one window (or in the whole recount) and the first spelling seen."""

    count: int
    display: str | None


# ---- dead letters ------------------------------------------------------------------------------
# Pub/Sub's message limits (https://cloud.google.com/pubsub/quotas#resource_limits, and the
# PubsubMessage reference: "attributes ... must not start with goog"): at most 100 attributes, keys
# up to 256 bytes, values up to 1024 bytes, valid UTF-8 (proto3 `string`), data and the whole
# publish request up to 10 MB. Beam 2.77 checks the same numbers before it writes
# (PubsubMessage._to_proto_str in apache_beam/io/gcp/pubsub.py: ValueError 'more than 100
# attributes' is what killed the job), and the local writer publishes with
# ``PublisherClient.publish(topic, data, **attributes)`` (google-cloud-pubsub's publisher/client.py),
# so an attribute named like one of publish()'s own parameters would collide with it.
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_MESSAGE_BYTES = 10_000_000
RESERVED_KEY_PREFIX = "goog"
PUBLISH_PARAMETERS = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})
# Payload bytes a dead letter keeps whole: room for 100 maximal attributes (with their proto framing)
# and the publish request's topic name inside the 10 MB.
MAX_DEAD_LETTER_DATA_BYTES = (MAX_MESSAGE_BYTES - MAX_ATTRIBUTES * (MAX_ATTRIBUTE_KEY_BYTES + MAX_ATTRIBUTE_VALUE_BYTES + 16)
                              - 4096)
REASON = "dlq_reason"
SOURCE = "dlq_source"
ORIGINAL_BYTES = "dlq_original_bytes"  # set when the payload was truncated: its full size
DROPPED_ATTRIBUTES = "dlq_dropped_attributes"  # set when original attributes did not fit: how many
PAYLOAD_KIND = "dlq_payload"  # "repr" when the element was not bytes/str/PubsubMessage


def _fit_text(value: str, max_bytes: int) -> str:
    """``value`` as valid UTF-8 of at most ``max_bytes`` (lone surrogates escaped, cut at a character)."""
    raw = value.encode("utf-8", "backslashreplace")
    if len(raw) > max_bytes:
        raw = raw[:max_bytes]
    return raw.decode("utf-8", "ignore")


def _utf8_size(value) -> int | None:
    """UTF-8 size of a str (None if it is not a str or holds a lone surrogate)."""
    if type(value) is not str:
        return None
    if value.isascii():
        return len(value)
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _publishable_attribute(key, value) -> bool:
    key_size, value_size = _utf8_size(key), _utf8_size(value)
    return (key_size is not None and 0 < key_size <= MAX_ATTRIBUTE_KEY_BYTES
            and value_size is not None and value_size <= MAX_ATTRIBUTE_VALUE_BYTES
            and not key.startswith(RESERVED_KEY_PREFIX) and not key.startswith("dlq_")
            and key not in PUBLISH_PARAMETERS)


def _attribute_items(attributes) -> tuple[list[tuple[str, str]], int]:
    """(the publishable original attributes in their order, how many there were in all)."""
    if not attributes:
        return [], 0
    try:
        items = list(attributes.items()) if isinstance(attributes, Mapping) else list(dict(attributes).items())
    except Exception:  # not a map at all: nothing to keep, one thing dropped
        return [], 1
    return [(k, v) for k, v in items if _publishable_attribute(k, v)], len(items)


def dead_letter(data, attributes, reason: str, source: str) -> PubsubMessage:
    """The DLQ message, whatever the input: the ORIGINAL payload bytes (truncated only past
    ``MAX_DEAD_LETTER_DATA_BYTES``, then ``dlq_original_bytes`` holds the full size), the reason and
    source in attributes, and as many original attributes as Pub/Sub accepts beside them (dropped
    ones, invalid or past the count limit, are counted in ``dlq_dropped_attributes``)."""
    ours = {REASON: _fit_text(str(reason), MAX_ATTRIBUTE_VALUE_BYTES) or "rejected",
            SOURCE: _fit_text(str(source), MAX_ATTRIBUTE_VALUE_BYTES)}
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    elif data is None:
        data = b""
    elif not isinstance(data, bytes):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            data = _fit_text(repr(data), MAX_ATTRIBUTE_VALUE_BYTES).encode("utf-8")
            ours[PAYLOAD_KIND] = "repr"
    if len(data) > MAX_DEAD_LETTER_DATA_BYTES:
        ours[ORIGINAL_BYTES] = str(len(data))
        data = data[:MAX_DEAD_LETTER_DATA_BYTES]
    kept, total = _attribute_items(attributes)
    room = MAX_ATTRIBUTES - len(ours)
    if len(kept) < total or len(kept) > room:
        room -= 1  # the dropped count takes a slot too
    kept = kept[:room]
    if len(kept) < total:
        ours[DROPPED_ATTRIBUTES] = str(total - len(kept))
    return PubsubMessage(data=data, attributes={**dict(kept), **ours})


def pubsub_problems(message: PubsubMessage) -> list[str]:
    """What Pub/Sub would refuse in ``message`` (the limits above); empty when it is publishable."""
    problems = []
    data, attributes = message.data, message.attributes or {}
    if not isinstance(data, bytes):
        problems.append(f"data is {type(data).__name__}, not bytes")
    elif len(data) > MAX_MESSAGE_BYTES:
        problems.append(f"data is {len(data)} bytes")
    if not data and not attributes:
        problems.append("neither data nor attributes")
    if len(attributes) > MAX_ATTRIBUTES:
        problems.append(f"{len(attributes)} attributes")
    size = len(data) if isinstance(data, bytes) else 0
    for k, v in attributes.items():
        ks, vs = _utf8_size(k), _utf8_size(v)
        if ks is None or not 0 < ks <= MAX_ATTRIBUTE_KEY_BYTES:
            problems.append(f"attribute key {k!r:.60}")
        elif k.startswith(RESERVED_KEY_PREFIX) or k in PUBLISH_PARAMETERS:
            problems.append(f"reserved attribute key {k!r}")
        if vs is None or vs > MAX_ATTRIBUTE_VALUE_BYTES:
            problems.append(f"attribute value of {k!r:.60}")
        size += (ks or 0) + (vs or 0) + 16
    if size > MAX_MESSAGE_BYTES - 4096:
        problems.append(f"message of about {size} bytes")
    return problems


# ---- parsing -----------------------------------------------------------------------------------
def _data_and_attributes(element) -> tuple:
    """(payload, attributes) of whatever the read produced: a PubsubMessage, bytes or str. Any other
    element is handed on as it is: the parser rejects it, dead_letter keeps its repr."""
    if isinstance(element, PubsubMessage):
        data, attributes = element.data, element.attributes
        if data is None:
            data = b""
        elif isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if attributes is not None and not isinstance(attributes, dict):
            attributes = dict(attributes) if isinstance(attributes, Mapping) else attributes
        return data, attributes
    if isinstance(element, (bytearray, memoryview)):
        return bytes(element), None
    return element, None


def _payload(data) -> bytes | str | None:
    return data if isinstance(data, (bytes, str)) else None


def _now() -> dt.datetime:
    return dt.datetime.now(layout.UTC)


class _ParseFn(beam.DoFn):
    """The one never-raise skeleton of both parse steps: PubsubMessage | bytes → ``parse`` → the
    accepted value (``accept``) on the main output, or exactly one dead letter on DEAD."""

    def __init__(self, source: str, bounds: Bounds | None, rejected_metric: str):
        self._source = source
        self._bounds = bounds
        self._rejected = Metrics.counter("hashtags", rejected_metric)

    def parse(self, payload, attributes):  # -> parsed value | Rejected; never raises by design
        raise NotImplementedError

    def accept(self, parsed):
        return parsed

    def process(self, element):
        data = attributes = None
        try:
            data, attributes = _data_and_attributes(element)
            payload = _payload(data)
            if payload is None:
                parsed = Rejected(f"element is {type(data).__name__}, not a Pub/Sub message or bytes")
            else:
                parsed = self.parse(payload, attributes)
            if type(parsed) is not Rejected:
                yield self.accept(parsed)
                return
            reason = parsed.reason
        except Exception as e:  # the parsers never raise by design; belt and braces
            reason = f"internal parse error: {type(e).__name__}: {e}"
        self._rejected.inc()
        yield beam.pvalue.TaggedOutput(DEAD, dead_letter(data if data is not None else element, attributes,
                                                         reason, self._source))


class ParsePostEventsFn(_ParseFn):
    """PubsubMessage | bytes → PostEvent, rejects → DEAD output (never raises).

    ``stamp``: timestamp each event with its event_time (the local path; on Dataflow the read takes
    it from the attribute, so False). ``bounds``: the event times accepted, checked against the
    worker's clock at processing time. ``require_attributes``: the attributes must carry event_time
    and event_id, agreeing with the body (the Dataflow path)."""

    def __init__(self, source: str = "post-events", stamp: bool = True, bounds: Bounds | None = None,
                 require_attributes: bool = False):
        super().__init__(source, bounds, "post_events_rejected")
        self._stamp = stamp
        self._require = require_attributes
        self._valid = Metrics.counter("hashtags", "post_events_valid")

    def parse(self, payload, attributes):
        return parse_post_event(payload, attributes, now=_now(), bounds=self._bounds,
                                require_attributes=self._require)

    def accept(self, event):
        self._valid.inc()
        return TimestampedValue(event, event.event_time.timestamp()) if self._stamp else event


class ParseTopPostsFn(_ParseFn):
    """PubsubMessage | bytes → TopPostsUpdate (computed_at within ``bounds`` of the worker's clock),
    rejects → DEAD output (never raises)."""

    def __init__(self, source: str = "top-posts", bounds: Bounds | None = None):
        super().__init__(source, bounds, "top_posts_rejected")

    def parse(self, payload, attributes):
        return parse_top_posts(payload, now=_now(), bounds=self._bounds)


class ParsePostEvents(beam.PTransform):
    """Outputs a tuple-like result: ``result.events`` (PostEvent) and ``result.dead`` (PubsubMessage).
    Arguments: see ParsePostEventsFn."""

    def __init__(self, stamp: bool = True, bounds: Bounds | None = None, require_attributes: bool = False):
        super().__init__()
        self._fn = ParsePostEventsFn(stamp=stamp, bounds=bounds, require_attributes=require_attributes)

    def expand(self, messages):
        return messages | "Parse" >> beam.ParDo(self._fn).with_outputs(DEAD, main="events")


class ParseTopPosts(beam.PTransform):
    """``result.updates`` (TopPostsUpdate) and ``result.dead`` (PubsubMessage)."""

    def __init__(self, bounds: Bounds | None = None):
        super().__init__()
        self._fn = ParseTopPostsFn(bounds=bounds)

    def expand(self, messages):
        return messages | "Parse" >> beam.ParDo(self._fn).with_outputs(DEAD, main="updates")


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
