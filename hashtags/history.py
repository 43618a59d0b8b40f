"""A tag's use over the last 7 days and 24 hours, from one page document. Pure (no I/O).

``usage_history(doc, now)``:

- ``days``: 7 :class:`DayPoint`, newest first, ending with ``now``'s UTC day (partial, as Mastodon's
  ``history``). A day that ends at or before ``doc.base_as_of`` (the last reconciliation's as_of)
  comes from the ``days`` family and is exact: its ``p.`` cell, 0 without one (the nightly job
  writes a cell for every day its changes touch, so a day without one had no posts it counted).
  Any later day, a day the base's as_of falls inside, and every day of a tag with no base yet sum
  the hour cells (every generation) that start in it: ``exact=False``, the streaming count.
- ``accounts``: the day's ``a.`` cell where one exists, None otherwise (hour cells carry no accounts).
- ``hours``: 24 :class:`HourPoint`, oldest first, the last one the hour ``now`` is in; posts = the
  hour cells of every generation starting at that hour, 0 where there is none.
- ``as_of`` = ``doc.base_as_of``.

Counts are clamped at 0 (cells are signed; the total rule clamps the same way), so a chart never
goes below its axis.
"""
from __future__ import annotations

import datetime as dt
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


@dataclass(frozen=True, slots=True)
class History:
    as_of: dt.datetime | None
    days: tuple[DayPoint, ...]  # newest first
    hours: tuple[HourPoint, ...]  # oldest first


def usage_history(doc: PageDocument, now: dt.datetime) -> History:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    per_hour = {h.start: h.posts for h in doc.hours}
    return History(as_of=doc.base_as_of, days=_days(doc, now.astimezone(UTC).date()),
                   hours=_hours(per_hour, hour_start(now)))


def _days(doc: PageDocument, today: dt.date) -> tuple[DayPoint, ...]:
    cells = {d.day: d for d in doc.days}
    hour_sums: dict[dt.date, int] = {}
    first = midnight_utc(today - dt.timedelta(days=DAYS - 1))
    for h in doc.hours:
        if h.start >= first:
            day = h.start.astimezone(UTC).date()
            hour_sums[day] = hour_sums.get(day, 0) + h.posts
    points = []
    for back in range(DAYS):
        day = today - dt.timedelta(days=back)
        cell = cells.get(day)
        accounts = cell.accounts if cell is not None else None
        start = midnight_utc(day)
        if doc.base_as_of is not None and start + _DAY <= doc.base_as_of:
            points.append(DayPoint(day, max(cell.posts, 0) if cell is not None else 0, accounts, True))
        else:
            posts = hour_sums.get(day, 0)
            points.append(DayPoint(day, max(posts, 0), accounts, False))
    return tuple(points)


def _hours(per_hour: dict[dt.datetime, int], current: dt.datetime) -> tuple[HourPoint, ...]:
    starts = [current - _HOUR * back for back in range(HOURS - 1, -1, -1)]
    return tuple(HourPoint(s, max(per_hour.get(s, 0), 0)) for s in starts)
