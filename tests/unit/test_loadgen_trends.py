"""devstack.loadgen's trend shapes: a burst is N distinct accounts, a flood is one account; both are
valid post events (the real parser) carrying the tag, timed within the last minute."""
from __future__ import annotations

import datetime as dt

from devstack import loadgen
from hashtags.messages import PostEvent, parse_post_event

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.timezone.utc)


def parsed(messages):
    events = [parse_post_event(m.data) for m in messages]
    assert all(isinstance(e, PostEvent) for e in events)
    return events


def test_burst_is_distinct_accounts_and_flood_is_one():
    burst = parsed(loadgen.burst("Eclipse", 40, now=NOW))
    flood = parsed(loadgen.flood("spam", 300, now=NOW))
    assert (len(burst), len({e.user_id for e in burst})) == (40, 40)
    assert (len(flood), len({e.user_id for e in flood})) == (300, 1)
    assert {k for e in burst for k, _ in e.tags()} == {"eclipse"}
    assert all(NOW - dt.timedelta(seconds=60) <= e.event_time <= NOW for e in burst + flood)
    assert len({m.attributes["event_id"] for m in loadgen.flood("spam", 300, now=NOW)}) == 300


def test_history_spreads_a_fraction_over_the_past_days_before_midnight():
    msgs = [m for m in loadgen.generate(2000, seed=3, now=NOW, deletes=0, malformed=0,
                                        history_days=7, history_fraction=0.5)]
    times = [e.event_time for e in parsed(msgs)]
    midnight = NOW.replace(hour=0)
    past = [t for t in times if t < midnight]
    recent = [t for t in times if t >= NOW - dt.timedelta(minutes=20)]
    assert len(past) + len(recent) == 2000
    assert 900 < len(past) < 1100  # binomial(2000, 0.5): ±5 sd
    assert min(past) >= midnight - dt.timedelta(days=7)
    assert {t.date() for t in past} == {(midnight - dt.timedelta(days=d)).date() for d in range(1, 8)}


def test_no_history_by_default():
    times = [e.event_time for e in parsed(loadgen.generate(500, seed=3, now=NOW, deletes=0, malformed=0))]
    assert min(times) >= NOW - dt.timedelta(minutes=20)
