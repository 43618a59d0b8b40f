"""The trends branch under TestStream (issue 19 acceptance): the real parse DoFn, the minute
combine, the per-tag state and timers, the global ranking; lists checked with assert_that.

Times: the baseline hours are the 26 before 2026-11-23 12:00, the bursts are around 12:00."""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import trigger

from hashtags import trends
from pipelines.trends import LiveAccounts, RankedTrends
from pipelines.transforms import ParsePostEvents
from tests.unit.trends_helpers import DAY, NOON, UTC, burst, msg, steady, streaming_pipeline, until


def ranked(stream: TestStream, at_minutes: list[dt.datetime], view=lambda e: (e.tag, e.accounts, e.uses)):
    """(minute, [view(entry)…]) of the lists computed at the given minutes.

    Scores are checked where they are deterministic: the runner may fire a tag's timer for a minute
    before or after a pane that arrived with the same watermark step, so the minute of a peak can
    move by one (Beam orders nothing between a timer and an element of the same step)."""
    wanted = {m.timestamp() for m in at_minutes}

    class WithMinute(beam.DoFn):
        def process(self, entries, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
            if float(win.start) in wanted:
                yield (dt.datetime.fromtimestamp(float(win.start), UTC).strftime("%H:%M"), pane.index,
                       [view(e) for e in entries])

    with streaming_pipeline() as p:
        events = (p | stream | ParsePostEvents()).events
        out = events | RankedTrends() | beam.ParDo(WithMinute())
        yield out


def last_panes(panes) -> list:
    """The list each minute's cell ends up holding: its last pane (a late score re-fires the minute,
    accumulating, and rewrites the same cell)."""
    last = {}
    for minute, index, entries in panes:
        if minute not in last or index > last[minute][0]:
            last[minute] = (index, entries)
    return sorted((m, entries) for m, (_, entries) in last.items())


def run(stream: TestStream, minutes: list[dt.datetime], expected: list, **kw) -> None:
    for out in ranked(stream, minutes, **kw):
        assert_that(out, lambda got: _equal(last_panes(got), expected))


def _equal(actual, expected) -> None:
    assert actual == expected


def test_burst_trends_and_steady_flood_small_do_not_and_late_data_counts():
    """One job's worth of traffic (one pipeline: each run costs minutes on the local runner):

    - #steady: 8 accounts every hour for 26 hours, and still 8 now: O = E, never listed;
    - #burst: 2 accounts an hour, then 30 new accounts within the minute at 12:00: listed first;
    - #flood: ONE account posts 300 times at 12:00: one account, under the floor, never listed;
    - #real: 6 accounts at 12:00 (E = 1): listed;
    - #small: FLOOR - 1 accounts at 12:00: never listed;
    - #late: 3 accounts on time at 12:00, 3 more events for 12:00 arrive when the watermark is past
      12:10 (late panes within the allowed lateness): listed with 6 accounts at 12:11, and the lists
      of 12:05 on are re-fired with it (their last pane: what the minute's cell ends up holding).
    """
    start = NOON - dt.timedelta(hours=26)
    flood = [msg(f"f{i}", "flooder", "#flood", NOON + dt.timedelta(seconds=i % 60)) for i in range(300)]
    stream = (TestStream().advance_watermark_to(start.timestamp())
              .add_elements(steady("steady", start, 26, 8) + steady("burst", start, 26, 2, prefix="q"))
              .advance_watermark_to((NOON - dt.timedelta(minutes=1)).timestamp())
              .add_elements(burst("burst", NOON, 30) + steady("steady", NOON, 1, 8, prefix="s2") + flood
                            + burst("real", NOON, 6, prefix="r") + burst("small", NOON, trends.FLOOR - 1, prefix="m")
                            + burst("late", NOON, 3, prefix="l")))
    stream = until(stream, NOON + dt.timedelta(minutes=10))
    stream.add_elements([msg(f"l{i}", f"late{i}", "#late", NOON + dt.timedelta(seconds=30)) for i in range(3)])
    stream = until(stream, NOON + dt.timedelta(minutes=12))
    # at 12:05 q0 (11:01) has left #burst's window: 31 accounts; its score is at least (31 - 2)² / 2
    run(stream, [NOON + dt.timedelta(minutes=5), NOON + dt.timedelta(minutes=11)],
        [("12:05", [("burst", 31, 31, True), ("late", 6, 6, True), ("real", 6, 6, True)]),
         ("12:11", [("burst", 31, 31, True), ("late", 6, 6, True), ("real", 6, 6, True)])],
        view=lambda e: (e.tag, e.accounts, e.uses,
                        e.score >= trends.raw_score(31, 2.0) if e.tag == "burst" else e.score == 25.0))


def test_the_score_decays_after_the_peak():
    # 10 accounts at 12:00, nothing after: the score (81.0) holds while they are in the window, then
    # the peak decays with the half-life and the tag stays listed with 0 accounts in the window.
    stream = (TestStream().advance_watermark_to(NOON.timestamp())
              .add_elements(burst("peak", NOON, 10)))
    stream = until(stream, NOON + dt.timedelta(hours=2, minutes=1))
    peak = trends.raw_score(10, 1.0)  # 81.0, in the first minute the runner evaluates it
    at = [NOON + dt.timedelta(minutes=2), NOON + dt.timedelta(hours=1, minutes=30), NOON + dt.timedelta(hours=2)]

    def view(e):
        return (e.tag, e.accounts, e.uses, round(e.score, 3))

    for out in ranked(stream, at, view=view):
        assert_that(out, lambda got: _check({m: entries[0] for m, entries in last_panes(got)}, peak))


def _check(scores: dict, peak: float) -> None:
    assert sorted(scores) == ["12:02", "13:30", "14:00"], scores
    assert scores["12:02"][:3] == ("peak", 10, 10)
    assert peak * 0.5 ** (1 / 240) <= scores["12:02"][3] <= peak  # the peak, at most a minute old
    assert scores["13:30"][:3] == ("peak", 0, 0)  # the window is empty, the decaying peak remains
    # the raw score stays at the peak while the burst is in the window (until 13:00), then the peak
    # decays from there with the 4 h half-life: 30 minutes at 13:30, 30 more at 14:00
    assert scores["13:30"][3] == pytest.approx(peak * 0.5 ** (30 / 240), rel=1e-3)
    assert scores["14:00"][3] == pytest.approx(scores["13:30"][3] * 0.5 ** (30 / 240), rel=1e-3)


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
