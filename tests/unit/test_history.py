"""hashtags.history.usage_history on page documents built from cells by layout.page_document (the
path the store uses): exact days from the days family before the base, hour sums after it."""
from __future__ import annotations

import datetime as dt

import pytest

from hashtags import layout
from hashtags.history import DayPoint, HourPoint, usage_history
from hashtags.layout import Cell

UTC = dt.timezone.utc


def at(day, hour=0, minute=0):
    m, d = (11, day) if day > 1 else (12, day)
    return dt.datetime(2026, m, d, hour, minute, tzinfo=UTC)


def count(n, ts):
    return Cell(layout.encode_count(n), layout.to_millis(ts))


def doc(base_as_of, *, days=(), hours=()):
    return layout.page_document(
        "love",
        base=count(1000, base_as_of) if base_as_of else None,
        hours=list(hours),
        top=None,
        display=None,
        days=[(q, count(n, ts)) for q, n, ts in days],
    )


RUN = at(29)  # the last nightly run's as_of
DAY_CELLS = [
    (b"p.20261128", 39, at(28)),  # an older run's version
    (b"p.20261128", 40, RUN),
    (b"a.20261128", 17, RUN),
    (b"p.20261127", 30, RUN),  # no accounts cell
    # 26th: no cell at all
    (b"p.20261125", 12, RUN),
    (b"a.20261125", 5, RUN),
    (b"p.20261124", 99, RUN),  # outside the 7 days
    (b"a.20261130", 4, RUN),  # accounts for a day after the base (kept; posts still from the hours)
]
HOUR_CELLS = [
    count(50, at(28, 23)),  # inside an exact day: its day cell says 40, this is not used for the day
    count(3, at(29, 0)), count(4, at(29, 0)),  # two generations of one hour: added
    count(2, at(29, 23)),
    count(5, at(30, 12)),
    count(1, at(1, 9)),
    count(2, at(1, 10)), count(3, at(1, 10)),
]
NOW = at(1, 10, 30)


def test_days_exact_before_the_base_and_hour_sums_after():
    h = usage_history(doc(RUN, days=DAY_CELLS, hours=HOUR_CELLS), NOW)
    assert h.as_of == RUN
    assert h.days == (
        DayPoint(dt.date(2026, 12, 1), 6, None, False),
        DayPoint(dt.date(2026, 11, 30), 5, 4, False),
        DayPoint(dt.date(2026, 11, 29), 9, None, False),
        DayPoint(dt.date(2026, 11, 28), 40, 17, True),
        DayPoint(dt.date(2026, 11, 27), 30, None, True),
        DayPoint(dt.date(2026, 11, 26), 0, None, True),
        DayPoint(dt.date(2026, 11, 25), 12, 5, True),
    )


def test_hours_are_the_24_hours_ending_with_the_current_one():
    h = usage_history(doc(RUN, days=DAY_CELLS, hours=HOUR_CELLS), NOW)
    assert len(h.hours) == 24
    assert h.hours[0].start == at(30, 11) and h.hours[-1].start == at(1, 10)
    assert all(b.start - a.start == dt.timedelta(hours=1) for a, b in zip(h.hours, h.hours[1:]))
    nonzero = [p for p in h.hours if p.posts]
    assert nonzero == [HourPoint(at(30, 12), 5), HourPoint(at(1, 9), 1), HourPoint(at(1, 10), 5)]
    assert sum(p.posts for p in h.hours) == 11


def test_a_day_the_base_falls_inside_sums_its_hours():
    base = at(29, 6)  # a base not at midnight: the 29th is partly inside it
    cells = [*DAY_CELLS, (b"p.20261129", 100, base)]
    h = usage_history(doc(base, days=cells, hours=HOUR_CELLS), NOW)
    by_day = {p.day: p for p in h.days}
    assert by_day[dt.date(2026, 11, 29)] == DayPoint(dt.date(2026, 11, 29), 9, None, False)
    assert by_day[dt.date(2026, 11, 28)] == DayPoint(dt.date(2026, 11, 28), 40, 17, True)


def test_the_day_ending_exactly_at_the_base_is_exact():
    h = usage_history(doc(at(30), days=[(b"p.20261129", 8, at(30))], hours=HOUR_CELLS), NOW)
    by_day = {p.day: p for p in h.days}
    assert by_day[dt.date(2026, 11, 29)] == DayPoint(dt.date(2026, 11, 29), 8, None, True)
    assert by_day[dt.date(2026, 11, 30)] == DayPoint(dt.date(2026, 11, 30), 5, None, False)


def test_no_base_every_day_from_the_hours():
    h = usage_history(doc(None, days=DAY_CELLS, hours=HOUR_CELLS), NOW)
    assert h.as_of is None
    assert [(p.posts, p.accounts, p.exact) for p in h.days] == [
        (6, None, False), (5, 4, False), (9, None, False), (50, 17, False),
        (0, None, False), (0, None, False), (0, 5, False)]


def test_empty_document_is_all_zero():
    h = usage_history(doc(None), NOW)
    assert [p.day for p in h.days] == [dt.date(2026, 12, 1) - dt.timedelta(days=i) for i in range(7)]
    assert all(p.posts == 0 and p.accounts is None for p in h.days)
    assert [p.posts for p in h.hours] == [0] * 24


def test_now_in_another_zone_is_taken_in_utc():
    now = dt.datetime(2026, 12, 1, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 21:30 UTC on the 30th
    h = usage_history(doc(RUN, days=DAY_CELLS, hours=HOUR_CELLS), now)
    assert h.days[0].day == dt.date(2026, 11, 30)
    assert h.hours[-1].start == at(30, 21)
    assert h.hours[0].start == at(29, 22)
    assert sum(p.posts for p in h.hours) == 2 + 5  # 29th 23:00 and 30th 12:00


def test_negative_cells_show_as_zero():
    h = usage_history(doc(RUN, days=[(b"p.20261128", -3, RUN)], hours=[count(-2, at(1, 10))]), NOW)
    assert h.days[0].posts == 0 and h.days[3] == DayPoint(dt.date(2026, 11, 28), 0, None, True)
    assert h.hours[-1].posts == 0


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        usage_history(doc(None), dt.datetime(2026, 12, 1))
