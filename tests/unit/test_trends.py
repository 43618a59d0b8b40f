"""hashtags.trends (pure): the score, the relaunch seed, review rules, the row's encoding."""
from __future__ import annotations

import datetime as dt

from hashtags import trends
from hashtags.trends import HOUR_MS, MINUTE_MS, TagState, TrendDay, TrendEntry

T0 = 1_796_083_200_000  # a UTC midnight (ms)


def test_mastodon_formula_and_floor():
    assert trends.raw_score(trends.FLOOR - 1, 0) == 0.0
    assert trends.raw_score(5, 0) == 16.0  # expected is at least 1
    assert trends.raw_score(10, 10) == 0.0
    assert trends.raw_score(30, 10) == 40.0


def test_a_relaunch_seeded_from_the_stored_hours_does_not_make_a_steady_tag_look_new():
    now = T0 + 30 * HOUR_MS
    # the old job saw 20 accounts an hour for 30 hours; the new job starts empty at hour 29
    stored = {T0 + h * HOUR_MS: 20 for h in range(29)}
    fresh_accounts = list(range(20))

    cold = TagState()
    trends.add(cold, now - 10 * MINUTE_MS, fresh_accounts, 20)
    assert trends.evaluate(cold, now).score == trends.raw_score(20, 1.0) > 0  # what a cold state would do

    seeded = TagState()
    trends.seed(seeded, stored)
    trends.add(seeded, now - 10 * MINUTE_MS, fresh_accounts, 20)
    ev = trends.evaluate(seeded, now)
    assert (ev.accounts, ev.uses, ev.expected, ev.score) == (20, 20, 20.0, 0.0)


def test_an_hour_seen_by_both_jobs_keeps_the_larger_figure():
    st = TagState()
    hour = T0 + 5 * HOUR_MS
    trends.add(st, hour + MINUTE_MS, [1, 2, 3], 3)
    trends.seed(st, {hour: 7})
    trends.evaluate(st, hour + 3 * HOUR_MS)  # the hour is final
    assert st.hours[hour] == 7 and hour not in st.open_hours


def test_no_reset_at_midnight():
    # 12 accounts between 23:30 and 23:59; at 00:10 the trailing hour still holds them all
    st = TagState()
    midnight = T0 + 24 * HOUR_MS
    for i in range(12):
        trends.add(st, midnight - (30 - 2 * i) * MINUTE_MS, [i], 1)
    before = trends.evaluate(st, midnight)
    after = trends.evaluate(st, midnight + 10 * MINUTE_MS)
    assert before.accounts == after.accounts == 12
    assert after.score > 0


def test_the_peak_is_cleared_when_decayed_below_the_minimum():
    st = TagState()
    trends.add(st, T0, range(10), 10)
    assert trends.evaluate(st, T0 + MINUTE_MS).score == 81.0
    # the window empties at T0 + 1 h; 81 halves every 4 h: below 1.0 after ~25 h
    assert trends.evaluate(st, T0 + HOUR_MS + 24 * HOUR_MS).score > trends.MIN_SCORE
    assert trends.evaluate(st, T0 + HOUR_MS + 30 * HOUR_MS).score == 0.0
    assert not st.alive()


def test_review_rules():
    assert trends.review_state(hidden=True, trend="allowed") is None
    assert trends.review_state(hidden=False, trend="rejected") is None
    assert trends.review_state(hidden=False, trend="allowed") == "allowed"
    assert trends.review_state(hidden=False, trend="pending") == "pending"
    allowed, pending = (TrendEntry("a", "A", 2.0, 5, 6, r) for r in ("allowed", "pending"))
    assert [trends.shown(e, without_review=False) for e in (allowed, pending)] == [True, False]
    assert [trends.shown(e, without_review=True) for e in (allowed, pending)] == [True, True]


def test_row_round_trip_and_total_decoder():
    at = dt.datetime(2026, 12, 7, 12, 1, tzinfo=dt.timezone.utc)
    entries = [TrendEntry("eclipse", "Eclipse", 123.4567, 230, 412, "allowed",
                          (TrendDay(dt.date(2026, 12, 7), 412, 230),))]
    decoded = trends.decode_trends(trends.encode_trends(at, entries))
    assert decoded.computed_at == at
    assert decoded.entries == (TrendEntry("eclipse", "Eclipse", 123.457, 230, 412, "allowed",
                                          (TrendDay(dt.date(2026, 12, 7), 412, 230),)),)
    assert trends.decode_trends(b"\xff") == trends.TrendList(None)
    bad = b'{"computed_at":"x","entries":[{"tag":"a","score":1,"accounts":-1,"uses":1,"review":"pending"},' \
          b'{"tag":"b","score":1,"accounts":1,"uses":1,"review":"maybe"},' \
          b'{"tag":"c","score":1,"accounts":1,"uses":1,"review":"pending"}]}'
    assert [e.tag for e in trends.decode_trends(bad).entries] == ["c"]


def test_one_account_counts_once_per_window():
    st = TagState()
    for i in range(300):
        trends.add(st, T0 + (i % 50) * MINUTE_MS, [42], 1)
    ev = trends.evaluate(st, T0 + 55 * MINUTE_MS)
    assert (ev.accounts, ev.uses, ev.score) == (1, 300, 0.0)


def test_a_list_never_names_a_tag_twice():
    # seen on the running local stack before the fix: a tag evaluated at the horizon, then again at
    # the same minute, appeared twice in that minute's list
    a1 = TrendEntry("a", "a", 10.0, 6, 6)
    a2 = TrendEntry("a", "a", 12.0, 7, 7)
    b = TrendEntry("b", "b", 11.0, 6, 6)
    assert trends.top([a1, b, a2]) == [a2, b]
    assert trends.top([a1, a1]) == [a1]
