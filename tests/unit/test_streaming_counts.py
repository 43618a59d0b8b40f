"""The streaming count path under TestStream: windows, lateness, deletes, distinct tags, dead letters."""
from __future__ import annotations

import datetime as dt
import json
import re

import apache_beam as beam
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger
from apache_beam.transforms.window import TimestampedValue

from pipelines.streaming import HourCountRow, WindowedTagCounts
from pipelines.transforms import ParsePostEvents

UTC = dt.timezone.utc
H10 = dt.datetime(2026, 11, 23, 10, tzinfo=UTC)
H11 = H10 + dt.timedelta(hours=1)


def ts(t: dt.datetime) -> float:
    return t.timestamp()


def msg(post_id, caption, at: dt.datetime, event="published"):
    body = {"event": event, "post_id": post_id, "user_id": "u1", "caption": caption,
            "image_url": "https://img.example/1.jpg", "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return json.dumps(body).encode()


def at(minutes_after_10: float) -> dt.datetime:
    return H10 + dt.timedelta(minutes=minutes_after_10)


def streaming_pipeline():
    opts = PipelineOptions([])
    opts.view_as(StandardOptions).streaming = True
    return TestPipeline(options=opts)


def final_counts(hour_counts):
    """The last pane per (key, window) is what the hour cell ends up holding."""
    last = {}
    for hc in hour_counts:
        k = (hc.key, hc.window_start.strftime("%H:%M"))
        if k not in last or hc.pane_index > last[k][0]:
            last[k] = (hc.pane_index, hc.tally.count)
    return {k: v[1] for k, v in last.items()}




def test_on_time_counts_per_hour_window():
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([TimestampedValue(msg("p1", "#a #b", at(5)), ts(at(5))),
                             TimestampedValue(msg("p2", "#a", at(20)), ts(at(20))),
                             TimestampedValue(msg("p3", "#a #c", at(70)), ts(at(70)))])
              .advance_watermark_to(ts(H11) + 3600 + 1)
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        counts = (p | stream | ParsePostEvents()).events
        out = (counts | WindowedTagCounts(late_trigger=trigger.AfterCount(1))
               | beam.Map(lambda hc: (hc.key, hc.window_start.strftime("%H:%M"), hc.tally.count, hc.tally.display)))
        assert_that(out, equal_to([("a", "10:00", 2, "a"), ("b", "10:00", 1, "b"),
                                   ("a", "11:00", 1, "a"), ("c", "11:00", 1, "c")]))


def test_late_event_within_lateness_updates_the_same_hour_cell():
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([TimestampedValue(msg("p1", "#late", at(10)), ts(at(10)))])
              .advance_watermark_to(ts(H11) + 1800)  # window 10:00 fired on time
              .add_elements([TimestampedValue(msg("p2", "#late", at(30)), ts(at(30)))])  # late
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        counts = (p | stream | ParsePostEvents()).events | WindowedTagCounts(late_trigger=trigger.AfterCount(1))
        out = counts | beam.Map(lambda hc: (hc.key, hc.window_start.strftime("%H:%M"), hc.tally.count, hc.pane_index))
        # two panes of ONE window (same cell, rewritten): on time with 1, then late with the accumulated 2
        assert_that(out, equal_to([("late", "10:00", 1, 0), ("late", "10:00", 2, 1)]))
        rows = counts | beam.ParDo(HourCountRow()) | beam.Map(lambda r: (r.row_key, len(r._get_mutations())))
        assert_that(rows, equal_to([(b"late", 2), (b"late", 2)]), label="rows")


def test_event_beyond_allowed_lateness_is_dropped_from_counts():
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([TimestampedValue(msg("p1", "#x", at(10)), ts(at(10)))])
              .advance_watermark_to(ts(H11) + 7200)
              .add_elements([TimestampedValue(msg("p2", "#x", at(20)), ts(at(20)))])  # 2h late > 1h lateness
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        counts = (p | stream | ParsePostEvents()).events | WindowedTagCounts(
            allowed_lateness_seconds=3600, late_trigger=trigger.AfterCount(1))
        assert_that(counts | beam.Map(lambda hc: (hc.key, hc.tally.count)), equal_to([("x", 1)]))


def test_deleted_post_decrements_and_repeated_tags_count_once():
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([
                  TimestampedValue(msg("p1", "#Tag #tag #TAG and #ｔａｇ", at(1)), ts(at(1))),
                  TimestampedValue(msg("p2", "#tag #other", at(2)), ts(at(2))),
                  TimestampedValue(msg("p2", "#tag #other", at(3), event="deleted"), ts(at(3))),
              ])
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        counts = (p | stream | ParsePostEvents()).events | WindowedTagCounts(late_trigger=trigger.AfterCount(1))
        out = counts | beam.Map(lambda hc: (hc.key, hc.tally.count, hc.tally.display))
        assert_that(out, equal_to([("tag", 1, "Tag"), ("other", 0, "other")]))


def test_malformed_messages_reach_dead_letters_and_valid_ones_count():
    bad = [b"not json", b"[1,2]", json.dumps({"event": "published"}).encode(),
           msg("p9", "#x", at(1)).replace(b"https://", b"http://"), b"\xff\xfe"]
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([TimestampedValue(b, ts(at(1))) for b in bad])
              .add_elements([TimestampedValue(msg("p1", "#ok", at(2)), ts(at(2)))])
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        parsed = p | stream | ParsePostEvents()
        counts = parsed.events | WindowedTagCounts(late_trigger=trigger.AfterCount(1))
        assert_that(counts | beam.Map(lambda hc: (hc.key, hc.tally.count)), equal_to([("ok", 1)]), label="counts")
        dead = parsed.dead | beam.Map(lambda m: (m.data, m.attributes["dlq_source"], m.attributes["dlq_reason"].split(":")[0]))
        assert_that(dead, equal_to([
            (b"not json", "post-events", "payload is not JSON"),
            (b"[1,2]", "post-events", "payload is JSON list, expected an object"),
            (bad[2], "post-events", "missing field 'post_id'"),
            (bad[3], "post-events", "field 'image_url' must be an https URL, got 'http"),
            (b"\xff\xfe", "post-events", "payload is not UTF-8"),
        ]), label="dead")


def test_future_and_pre_floor_events_reach_dead_letters_and_valid_ones_still_count():
    future = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(days=1)  # beyond the 5-minute skew
    pre_floor = dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)
    bad = [msg("pf", "#ok #future", future), msg("pp", "#ok #old", pre_floor)]
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([TimestampedValue(msg("p1", "#ok #b", at(1)), ts(at(1)))])
              .add_elements([TimestampedValue(b, ts(at(2))) for b in bad])
              .add_elements([TimestampedValue(msg("p2", "#ok", at(3)), ts(at(3))),
                             TimestampedValue(msg("p3", "#OK", at(70)), ts(at(70)))])
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        parsed = p | stream | ParsePostEvents()
        counts = parsed.events | WindowedTagCounts(late_trigger=trigger.AfterCount(1))
        assert_that(counts | beam.Map(lambda hc: (hc.key, hc.window_start.strftime("%H:%M"), hc.tally.count)),
                    equal_to([("ok", "10:00", 2), ("b", "10:00", 1), ("ok", "11:00", 1)]), label="counts")
        dead = parsed.dead | beam.Map(lambda m: (m.data, re.match(r"field 'event_time' is (in the future|before "
                                                                  r"the floor)", m.attributes["dlq_reason"])[0]))
        assert_that(dead, equal_to([(bad[0], "field 'event_time' is in the future"),
                                    (bad[1], "field 'event_time' is before the floor")]), label="dead")


def test_dataflow_path_keeps_the_read_timestamp_and_dead_letters_attribute_disagreements():
    """stamp=False, require_attributes=True: the element timestamp is the read's (Dataflow's, from the
    event_time attribute: here TestStream's), and the attributes must agree with the body."""
    def pubsub(post_id, caption, t, **attrs):
        return PubsubMessage(msg(post_id, caption, t), attrs)

    t1 = at(5).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = pubsub("p1", "#a", at(5), event_time=t1, event_id="e1")
    bad = [pubsub("p2", "#a", at(6), event_id="e2"),  # no event_time attribute
           pubsub("p3", "#a", at(7), event_time=t1, event_id="e3")]  # attribute says 10:05, body 10:07
    stream = (TestStream()
              .advance_watermark_to(ts(H10))
              .add_elements([TimestampedValue(m, ts(at(4))) for m in [ok, *bad]])  # not the body's 10:05
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        parsed = p | stream | ParsePostEvents(stamp=False, require_attributes=True)
        stamps = parsed.events | beam.Map(lambda e, t=beam.DoFn.TimestampParam: (e.post_id, float(t)))
        assert_that(stamps, equal_to([("p1", ts(at(4)))]), label="stamps")  # not re-stamped
        dead = parsed.dead | beam.Map(lambda m: m.attributes["dlq_reason"][:40])
        assert_that(dead, equal_to(["missing attribute 'event_time' (required",
                                    "attribute 'event_time' '2026-11-23T10:05"]), label="dead")
