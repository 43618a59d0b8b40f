"""Step 7b, the day cells (the rule: hashtags/day_cells.py): per (tag, event day) the changes'
deltas and the distinct accounts of the published winners → the day cells at M."""
from __future__ import annotations

import datetime as dt
from typing import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from hashtag_store import mutations
from hashtags import day_cells
from hashtags import post_state as ps
from hashtags.day_cells import DayCells, DaySpan
from pipelines.recount_steps import COUNTS, NAMESPACE
from pipelines.recount_steps.changes import PostChange

_DELETED = ps.CANDIDATE_FIELDS.index("deleted")
_USER_ID = ps.CANDIDATE_FIELDS.index("user_id")


def change_day_deltas(change: PostChange, days: DaySpan) -> Iterator[tuple[tuple[str, int], int]]:
    """A change's ((tag, event day), ±1) within ``days`` (the horizon)."""
    for key, day, d in day_cells.day_deltas(change.old, change.new):
        if day in days:
            yield (key, day), d


def _by_tag(tag_day, n):
    key, day = tag_day
    return key, (day, n)


class SumDayDeltas(beam.PTransform):
    """PostChange → (key, (day, Σ deltas)) for every (tag, event day) in ``days`` a change touches."""

    def __init__(self, days: DaySpan):
        super().__init__()
        self.days = days

    def expand(self, changes):
        return (changes
                | "DayDeltas" >> beam.FlatMap(change_day_deltas, self.days)
                | "SumPerTagDay" >> beam.CombinePerKey(sum)
                | "ByTag" >> beam.MapTuple(_by_tag))


def winner_accounts(kv, days: DaySpan) -> Iterator[tuple[tuple[str, int], str]]:
    """(post_id, winner) → ((tag, event day), user_id) of a published winner of one of ``days``."""
    post_id, c = kv
    if c[_DELETED]:
        return
    day = day_cells.event_day(ps.event_time_us(c))
    if day in days:
        user_id = c[_USER_ID]
        for key in ps.state_of(post_id, c).tags:
            yield (key, day), user_id


class DayAccounts(beam.PTransform):
    """(post_id, winner) → (key, (day, distinct accounts)) for the days in ``days``: a ``Distinct``
    of (tag, day, user) and a count per (tag, day), both combiner-lifted (no set of a big tag's
    accounts is ever held in one accumulator)."""

    def __init__(self, days: DaySpan):
        super().__init__()
        self.days = days

    def expand(self, winners):
        return (winners
                | "TagDayAccounts" >> beam.FlatMap(winner_accounts, self.days)
                | "DistinctAccounts" >> beam.Distinct()
                | "TagDays" >> beam.Keys()
                | "AccountsPerTagDay" >> beam.combiners.Count.PerElement()
                | "ByTag" >> beam.MapTuple(_by_tag))


def tag_day_cells(key: str, g: dict, *, fresh: bool, horizon: DaySpan, account_days: DaySpan
                  ) -> Iterator[DayCells]:
    """The join's group of a tag → its day cells at M, if any (hashtags.day_cells.day_cells)."""
    cells = day_cells.day_cells(key, g["day_delta"], g["accounts"], next(iter(g["day_prior"]), None),
                                fresh=fresh, horizon=horizon, account_days=account_days)
    if cells is not None:
        yield cells


class DayRowFn(beam.DoFn):
    """A tag's day cells → its ``days`` row at M."""

    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._posts = Metrics.counter(NAMESPACE, "day_post_cells")
        self._accounts = Metrics.counter(NAMESPACE, "day_account_cells")

    def process(self, cells: DayCells):
        self._posts.inc(len(cells.posts))
        self._accounts.inc(len(cells.accounts))
        yield mutations.day_cells_row(cells.key, self._as_of, cells.by_date())


def _day_cell_counts(cells: DayCells):
    yield "day_post_cells", len(cells.posts)
    yield "day_account_cells", len(cells.accounts)


class DayCellsOfTags(beam.PTransform):
    """The join's groups (key, {"day_delta", "accounts", "day_prior", …}) → ``days``: each tag's
    DayCells at M, and ``counts`` (``day_post_cells``, ``day_account_cells``)."""

    def __init__(self, *, fresh: bool, horizon: DaySpan, account_days: DaySpan):
        super().__init__()
        self.fresh, self.horizon, self.account_days = fresh, horizon, account_days

    def expand(self, joined):
        fresh, horizon, account_days = self.fresh, self.horizon, self.account_days
        days = joined | "DayCells" >> beam.FlatMap(lambda kv: tag_day_cells(
            *kv, fresh=fresh, horizon=horizon, account_days=account_days))
        return {"days": days, COUNTS: days | "CountDayCells" >> beam.FlatMap(_day_cell_counts)}
