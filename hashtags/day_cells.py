"""The reconciliation's per-day cells (``days:p.<YYYYMMDD>`` and ``days:a.<YYYYMMDD>``,
hashtags/layout.py): which (tag, day) cells a run at M writes, and their values. Pure.

Days are ints here (days since 1970-01-01, UTC: :func:`day_number`) so they cross the job's shuffle
as primitives; :func:`to_date` turns them back into dates at the write.

**Posts** (``p.<day>``, exact). A changed post moves one post between (tag, event day) cells: −1 on
each (tag, day) of the old winner if it was published, +1 on each of the new winner's if it is
(:func:`day_deltas`, the day-wise form of ``hashtags.post_state.tag_deltas``). The cell at M is the
latest ``p.<day>`` cell a recorded run wrote (0 if none; hashtags/post_state.py "What a run
reads as applied") + the run's Σ deltas, for every day a change touches
(a Σ of 0 included). A full rebuild (``fresh``) starts from 0 and also writes 0 to every ``p.`` cell
of the horizon it did not touch, so the repair of last resort repairs these cells too. Reads are
"as the recorded runs left them", writes are at M: a rerun of the night rewrites the same cells,
and a column whose newest cell is a failed run's is rewritten too (from its applied prior).

**The horizon.** Only days in [M − ``DAY_CELL_HORIZON_DAYS``, M − 1] are written (the page shows 7).
It is what keeps ``p.`` exact under the family's GC (layout.DAY_CELL_MAX_AGE_DAYS = 35 on the cell
timestamp): a day D is written only by runs with M in (D, D + horizon], so the prior a run reads was
written at most horizon − 1 days before its M, and is still there as long as the run starts less
than 35 − 27 = 8 days after its midnight. Without it a late event of a day whose cells were
collected would write the delta alone as that day's count.

**Accounts** (``a.<day>``): per (tag, day X), the number of distinct ``user_id`` of the published
winners with event day X, for every X among the run's ARRIVAL days (∩ the horizon; every horizon day
for a full rebuild, which reads every partition): a run sees a day's posts through the partitions it
reads, and distinct counts cannot be summed over runs. With the nightly's one-day overlap the run
at M reads partitions M−2 and M−1 and writes ``a.<M−2>`` and ``a.<M−1>``; the run at M+1 rewrites
``a.<M−1>`` from partitions M−1 and M. So **day X's value comes from the run that read partitions
X and X+1**: the accounts that published on X as the archive stood at the end of X+1 (an event of X
that arrived two or more days late, or a delete that arrived after X+1, changes ``p.<X>`` but not
``a.<X>``). A (tag, X) that has an ``a.`` cell before M and no published winner in this run is
written 0 (its posts were deleted or edited away).

**Deploying.** The chain of ``p.`` values starts at a full rebuild: on a table whose post states were
applied before this job wrote day cells, the first run must be a full rebuild (the DAG's
``full_rebuild`` param, or ``recount_main --mode=full_rebuild``), else a nightly writes only the
night's deltas as the count of the days it touches (until they leave the horizon).
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Iterable, Iterator, NamedTuple

from hashtags import layout
from hashtags.layout import Cell, DayCounts
from hashtags.planning import RunPlan
from hashtags.post_state import PostState

DAY_CELL_HORIZON_DAYS = 28  # see "The horizon"; with GC at 35 days it leaves a run 8 days of delay
_DAY_US = 86_400_000_000
_EPOCH_DAY = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    return (day - _EPOCH_DAY).days


def to_date(day: int) -> dt.date:
    return _EPOCH_DAY + dt.timedelta(days=day)


def event_day(event_time_us: int) -> int:
    """The UTC day (a day number) of an event time in µs since the epoch (floor division)."""
    return event_time_us // _DAY_US


class DaySpan(NamedTuple):
    """Days ``first`` .. ``last`` (day numbers, both inclusive; empty when first > last)."""

    first: int
    last: int

    def __contains__(self, day: object) -> bool:
        return isinstance(day, int) and self.first <= day <= self.last


def horizon(as_of: dt.date) -> DaySpan:
    """The days a run at midnight ``as_of`` may write: [M − DAY_CELL_HORIZON_DAYS, M − 1]."""
    m = day_number(as_of)
    return DaySpan(m - DAY_CELL_HORIZON_DAYS, m - 1)


def account_days(plan: RunPlan) -> DaySpan:
    """The days whose ``a.`` cells the run writes: its arrival days within the horizon."""
    h = horizon(plan.as_of)
    first = h.first if plan.arrived_from is None else max(h.first, day_number(plan.arrived_from))
    last = h.last if plan.arrived_to is None else min(h.last, day_number(plan.arrived_to))
    return DaySpan(first, last)


def day_deltas(old: PostState | None, new: PostState) -> Iterator[tuple[str, int, int]]:
    """(tag, event day, ±1) of a post whose winner went from ``old`` to ``new``."""
    if old is not None and old.published:
        day = event_day(old.order.event_time_us)
        for key in old.tags:
            yield key, day, -1
    if new.published:
        day = event_day(new.order.event_time_us)
        for key in new.tags:
            yield key, day, 1


class DayPriors(NamedTuple):
    """A row's ``days`` cells as the recorded runs left them: day → value, for posts and accounts;
    ``unapplied``: the (kind, day) columns whose newest cell before M no recorded run wrote (a
    failed run's, or any cell in a full rebuild): the run rewrites them, so none stays on the page."""

    posts: dict[int, int]
    accounts: dict[int, int]
    unapplied: frozenset[tuple[str, int]] = frozenset()


def priors_from_cells(cells: Iterable[tuple[bytes, Cell]], applied: Callable[[int], bool]) -> DayPriors:
    """(qualifier, cell) pairs of the ``days`` family (versions before M) → per column, the newest
    value a recorded run wrote (``applied(timestamp_ms)``, ``hashtags.post_state.Priors.applied``),
    and the columns whose newest cell is not such a one; undecodable cells are skipped."""
    newest: dict[tuple[str, int], Cell] = {}
    newest_applied: dict[tuple[str, int], Cell] = {}
    for qualifier, cell in cells:
        col = layout.parse_day_column(qualifier)
        if col is None or len(cell.value) != 8:
            continue
        k = (col.kind, day_number(col.day))
        if k not in newest or cell.timestamp_ms > newest[k].timestamp_ms:
            newest[k] = cell
        if applied(cell.timestamp_ms) and (k not in newest_applied or
                                           cell.timestamp_ms > newest_applied[k].timestamp_ms):
            newest_applied[k] = cell
    posts, accounts = {}, {}
    for (kind, day), cell in newest_applied.items():
        (posts if kind == "p" else accounts)[day] = layout.decode_count(cell.value)
    return DayPriors(posts, accounts, frozenset(k for k, c in newest.items() if newest_applied.get(k) is not c))


_NO_PRIORS = DayPriors({}, {})


class DayCells(NamedTuple):
    """What a run writes in one row's ``days`` family: day → posts / accounts (either may be absent)."""

    key: str
    posts: dict[int, int]
    accounts: dict[int, int]

    def by_date(self) -> dict[dt.date, DayCounts]:
        """The ``hashtag_store.mutations.day_cells_row`` form."""
        return {to_date(d): DayCounts(self.posts.get(d), self.accounts.get(d))
                for d in sorted(set(self.posts) | set(self.accounts))}


def day_cells(key: str, post_deltas: Iterable[tuple[int, int]], accounts: Iterable[tuple[int, int]],
              priors: DayPriors | None, *, fresh: bool, horizon: DaySpan, account_days: DaySpan
              ) -> DayCells | None:
    """A tag's cells at M, or None when the run writes none (see the module doc).

    ``post_deltas``: (day, Σ deltas) of the run's changes; ``accounts``: (day, distinct accounts) of
    the published winners; ``priors``: the row's latest cells before M (None: no row / no cell)."""
    prior = priors or _NO_PRIORS
    posts: dict[int, int] = {}
    for day, n in post_deltas:
        if day in horizon:
            posts[day] = posts.get(day, 0) + n
    for kind, day in prior.unapplied:  # rewritten from the applied prior (0 in a full rebuild)
        if kind == "p" and day in horizon:
            posts.setdefault(day, 0)
    if fresh:
        for day in prior.posts:
            if day in horizon:
                posts.setdefault(day, 0)
    else:
        posts = {day: prior.posts.get(day, 0) + n for day, n in posts.items()}
    counted = {day: n for day, n in accounts if day in account_days}
    for day in prior.accounts:
        if day in account_days:
            counted.setdefault(day, 0)
    for kind, day in prior.unapplied:
        if kind == "a" and day in horizon:
            counted.setdefault(day, 0 if fresh or day in account_days else prior.accounts.get(day, 0))
    if not posts and not counted:
        return None
    return DayCells(key, posts, counted)
