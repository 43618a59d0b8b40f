"""A tag's use over the last 7 days and 24 hours, from one page document. Pure (no I/O).

``usage_history(doc, now)``:

- ``days``: 7 :class:`DayPoint`, newest first, ending with ``now``'s UTC day (partial, as Mastodon's
  ``history``). A day that ends at or before ``doc.base_as_of`` (the last reconciliation's as_of)
  comes from the ``days`` family and is exact: its ``p.`` cell, 0 without one (the nightly job
  writes a cell for every day its changes touch, so a day without one had no posts it counted).
  Any later day, a day the base's as_of falls inside, and every day of a tag with no base yet sum
  the hour cells (every generation) that start in it: ``exact=False``, the streaming count.
- ``accounts``: the day's ``a.`` cell where one exists; otherwise, for a day the streaming job saw,
  the live distinct accounts per hour (``counts:u.<gen>``) summed over the day's hours and capped at
  its posts (an upper bound: an account active in two hours counts twice until the nightly's exact
  cell replaces it); None when neither exists.
- ``hours``: 24 :class:`HourPoint`, oldest first, the last one the hour ``now`` is in; posts = the
  hour cells of every generation starting at that hour, 0 where there is none.
- ``as_of`` = ``doc.base_as_of``.

Counts are clamped at 0 (cells are signed; the total rule clamps the same way), so a chart never
goes below its axis.
"""
from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass

from hashtags.layout import UTC, PageDocument, hour_start, midnight_utc

DAYS = 7
HOURS = 24
_DAY = dt.timedelta(days=1)
_HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: dt.date
    posts: int
    accounts: int | None
    exact: bool  # from the nightly reconciliation's day cells (else summed hour cells)


@dataclass(frozen=True, slots=True)
class HourPoint:
    start: dt.datetime
    posts: int
    accounts: int | None = None  # live distinct accounts in that hour (counts:u.), None without a cell


@dataclass(frozen=True, slots=True)
class History:
    as_of: dt.datetime | None
    days: tuple[DayPoint, ...]  # newest first
    hours: tuple[HourPoint, ...]  # oldest first


def usage_history(doc: PageDocument, now: dt.datetime) -> History:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # doc.hours is oldest first (its contract): each day and the last 24 hours are a slice found by
    # bisection, not a pass over every hour with a date conversion and a hash per hour
    starts = [h.start for h in doc.hours]
    return History(as_of=doc.base_as_of, days=_days(doc, starts, now.astimezone(UTC).date()),
                   hours=_hours(doc, starts, hour_start(now)))


def _days(doc: PageDocument, starts: list[dt.datetime], today: dt.date) -> tuple[DayPoint, ...]:
    cells = {d.day: d for d in doc.days}
    live: dict[dt.date, int] = {}
    for h in doc.accounts:
        live[h.start.date()] = live.get(h.start.date(), 0) + max(h.posts, 0)
    points = []
    end = midnight_utc(today) + _DAY
    hi = bisect_left(starts, end)
    for back in range(DAYS):
        day = today - dt.timedelta(days=back)
        cell = cells.get(day)
        accounts = cell.accounts if cell is not None else None
        start = end - _DAY
        lo = bisect_left(starts, start, 0, hi)
        if doc.base_as_of is not None and end <= doc.base_as_of:
            points.append(DayPoint(day, max(cell.posts, 0) if cell is not None else 0, accounts, True))
        else:
            posts = max(sum([h.posts for h in doc.hours[lo:hi]]), 0)
            if accounts is None and day in live:
                accounts = min(live[day], posts)
            points.append(DayPoint(day, posts, accounts, False))
        end, hi = start, lo
    return tuple(points)


def _hours(doc: PageDocument, starts: list[dt.datetime], current: dt.datetime) -> tuple[HourPoint, ...]:
    first = current - _HOUR * (HOURS - 1)
    per_hour = {h.start: h.posts for h in doc.hours[bisect_left(starts, first):]}
    accounts = {h.start: h.posts for h in doc.accounts if h.start >= first}
    return tuple([HourPoint(s, max(per_hour.get(s, 0), 0), accounts.get(s))
                  for s in (first + _HOUR * i for i in range(HOURS))])
