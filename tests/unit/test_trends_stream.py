"""The trends branch under TestStream (issue 19 acceptance): the real parse DoFn, the minute
combine, the per-tag state and timers, the global ranking; lists checked with assert_that.

Times: the baseline hours are 2026-11-23 00:00–10:00, the burst is around 12:00."""
from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger
from apache_beam.transforms.window import TimestampedValue

from hashtags import trends
from pipelines.trends import LiveAccounts, RankedTrends
from pipelines.transforms import ParsePostEvents

UTC = dt.timezone.utc
DAY = dt.datetime(2026, 11, 23, tzinfo=UTC)
NOON = DAY + dt.timedelta(hours=12)


def msg(post_id: str, user: str, caption: str, at: dt.datetime, event: str = "published") -> TimestampedValue:
    body = {"event": event, "post_id": post_id, "user_id": user, "caption": caption,
            "image_url": "https://img.example/1.jpg", "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return TimestampedValue(json.dumps(body).encode(), at.timestamp())


def until(stream: TestStream, end: dt.datetime, step: int = 240) -> TestStream:
    """Advance the watermark to ``end`` in steps shorter than the lists' allowed lateness, as a
    job's watermark moves (one jump of hours would fire every timer of the skipped minutes behind it,
    and their lists would be dropped as late)."""
    t = stream.watermarks[None].micros // 1_000_000 // 60 * 60 + step
    while t < end.timestamp():
        stream.advance_watermark_to(t)
        t += step
    return stream.advance_watermark_to(end.timestamp())


def streaming_pipeline():
    opts = PipelineOptions([])
    opts.view_as(StandardOptions).streaming = True
    return TestPipeline(options=opts)


def steady(tag: str, start: dt.datetime, hours: int, accounts_per_hour: int, prefix: str = "s"):
    """``accounts_per_hour`` distinct accounts post once each hour, spread over the hour."""
    out = []
    for h in range(hours):
        for a in range(accounts_per_hour):
            at = start + dt.timedelta(hours=h, minutes=(a * 50) // accounts_per_hour + 1)
            out.append(msg(f"{prefix}{tag}{h}-{a}", f"{prefix}{a}", f"#{tag}", at))
    return out


def ranked(stream: TestStream, at_minutes: list[dt.datetime], view=lambda e: (e.tag, e.accounts, e.uses)):
    """(minute, [view(entry)…]) of the lists computed at the given minutes.

    Scores are checked where they are deterministic: the runner may fire a tag's timer for a minute
    before or after a pane that arrived with the same watermark step, so the minute of a peak can
    move by one (Beam orders nothing between a timer and an element of the same step)."""
    wanted = {m.timestamp() for m in at_minutes}

    class WithMinute(beam.DoFn):
        def process(self, entries, win=beam.DoFn.WindowParam):
            if float(win.start) in wanted:
                yield (dt.datetime.fromtimestamp(float(win.start), UTC).strftime("%H:%M"),
                       [view(e) for e in entries])

    with streaming_pipeline() as p:
        events = (p | stream | ParsePostEvents()).events
        out = events | RankedTrends(late_trigger=trigger.AfterCount(1), fanout=None) | beam.ParDo(WithMinute())
        yield out


def run(stream: TestStream, minutes: list[dt.datetime], expected: list, **kw) -> None:
    for out in ranked(stream, minutes, **kw):
        assert_that(out, equal_to(expected))


def burst(tag: str, at: dt.datetime, accounts: int, prefix: str = "b"):
    return [msg(f"{prefix}{tag}{i}", f"{prefix}{i}", f"#{tag}", at + dt.timedelta(seconds=i)) for i in range(accounts)]


def score(observed: int, expected: float) -> float:
    return round(trends.raw_score(observed, expected), 2)


def test_a_burst_of_distinct_accounts_trends_and_a_steady_tag_does_not():
    # 26 hours before noon: #steady has 8 accounts every hour, #burst 2; at 12:00 30 new accounts
    # use #burst within a minute. At 12:01 the window (minutes 11:01-12:00) holds #burst's 2 hourly
    # accounts of hour 11 + the 30: O = 32 against E = 2 (its mean over the 24 hours before);
    # #steady: O = 8 = E, no score.
    start = NOON - dt.timedelta(hours=26)
    stream = (TestStream().advance_watermark_to(start.timestamp())
              .add_elements(steady("steady", start, 26, 8) + steady("burst", start, 26, 2, prefix="q"))
              .advance_watermark_to((NOON - dt.timedelta(minutes=1)).timestamp())
              .add_elements(burst("burst", NOON, 30)))
    stream = until(stream, NOON + dt.timedelta(minutes=6))
    # by 12:05 q0 (11:01) has left the window: 31 accounts; the score is at least (31 - 2)² / 2
    run(stream, [NOON + dt.timedelta(minutes=5)], [("12:05", [("burst", 31, 31, True)])],
        view=lambda e: (e.tag, e.accounts, e.uses, e.score >= trends.raw_score(31, 2.0) > 0))


def test_one_accounts_300_posts_count_as_one_account():
    flood = [msg(f"f{i}", "flooder", "#flood", NOON + dt.timedelta(seconds=i)) for i in range(300)]
    others = burst("real", NOON, 6)
    stream = (TestStream().advance_watermark_to(NOON.timestamp())
              .add_elements(flood + others))
    stream = until(stream, NOON + dt.timedelta(minutes=6))
    # #flood: 1 account (under the floor) never appears; #real: 6 accounts
    run(stream, [NOON + dt.timedelta(minutes=5)], [("12:05", [("real", 6, 6)])])


def test_a_tag_under_the_floor_never_appears():
    stream = (TestStream().advance_watermark_to(NOON.timestamp())
              .add_elements(burst("small", NOON, trends.FLOOR - 1)))
    stream = until(stream, NOON + dt.timedelta(minutes=10))
    for out in ranked(stream, [NOON + dt.timedelta(minutes=m) for m in range(0, 10)]):
        assert_that(out, equal_to([]))


def test_the_score_decays_after_the_peak():
    # 10 accounts at 12:00, nothing after: the score (81.0) holds while they are in the window, then
    # the peak decays with the half-life and the tag stays listed with 0 accounts in the window.
    stream = (TestStream().advance_watermark_to(NOON.timestamp())
              .add_elements(burst("peak", NOON, 10)))
    stream = until(stream, NOON + dt.timedelta(hours=5))
    peak = trends.raw_score(10, 1.0)  # 81.0, in the first minute the runner evaluates it
    at = [NOON + dt.timedelta(minutes=2), NOON + dt.timedelta(hours=2, minutes=2),
          NOON + dt.timedelta(hours=4, minutes=2)]
    def view(e):
        return (e.tag, e.accounts, e.uses, round(e.score, 3))

    for out in ranked(stream, at, view=view):
        assert_that(out, lambda got: _check({m: entries[0] for m, entries in got}, peak))


def _check(scores: dict, peak: float) -> None:
    assert sorted(scores) == ["12:02", "14:02", "16:02"], scores
    assert scores["12:02"][:3] == ("peak", 10, 10)
    assert peak * 0.5 ** (1 / 240) <= scores["12:02"][3] <= peak  # the peak, at most a minute old
    assert scores["14:02"][:3] == ("peak", 0, 0)  # the window is empty, the decaying peak remains
    # the raw score stays at the peak while the burst is in the window (until 13:00), then the peak
    # decays from there: 62 minutes of decay at 14:02, half a half-life more at 16:02
    assert scores["14:02"][3] == pytest.approx(peak * 0.5 ** (62 / 240), rel=1e-3)
    assert scores["16:02"][3] == pytest.approx(scores["14:02"][3] * 0.5 ** 0.5, rel=1e-3)


def test_late_data_within_the_allowed_lateness_is_counted():
    # 3 accounts on time at 12:00; 3 more events for 12:00 arrive after the watermark passed 12:10
    # (late panes of the 12:00 minute): the 12:11 list counts all 6.
    stream = until(TestStream().advance_watermark_to(NOON.timestamp()).add_elements(burst("late", NOON, 3)),
                   NOON + dt.timedelta(minutes=10))
    stream.add_elements([msg(f"l{i}", f"late{i}", "#late", NOON + dt.timedelta(seconds=30)) for i in range(3)])
    stream = until(stream, NOON + dt.timedelta(minutes=12))
    run(stream, [NOON + dt.timedelta(minutes=11)], [("12:11", [("late", 6, 6)])])


def test_live_accounts_per_hour_count_each_account_once():
    events = ([msg(f"f{i}", "flooder", "#a #b", DAY + dt.timedelta(minutes=i)) for i in range(30)]
              + [msg("x", "other", "#A", DAY + dt.timedelta(minutes=5)),
                 msg("d", "other", "#a", DAY + dt.timedelta(minutes=6), event="deleted"),
                 msg("y", "third", "#a", DAY + dt.timedelta(hours=1, minutes=5))])
    stream = (TestStream().advance_watermark_to(DAY.timestamp()).add_elements(events)
              .advance_watermark_to_infinity())
    final = {}

    with streaming_pipeline() as p:
        out = ((p | stream | ParsePostEvents()).events | LiveAccounts(late_trigger=trigger.AfterCount(1))
               | beam.Map(lambda h: (h.key, h.window_start.strftime("%H:%M"), h.accounts)))
        assert_that(out, equal_to([("a", "00:00", 2), ("b", "00:00", 1), ("a", "01:00", 1)]))
    del final
