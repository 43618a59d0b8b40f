"""Row mutations for the table layout, as google-cloud-bigtable ``DirectRow``s.

Both the adapter and Beam's ``WriteToBigTable`` (which takes DirectRows) use these, so a cell is
written the same way whichever path writes it. Every mutation is a SetCell at an explicit timestamp:
idempotent under retries and replays.
"""
from __future__ import annotations

import datetime as dt
from typing import Mapping, Sequence

from google.cloud.bigtable.row import DirectRow

from hashtags import layout, trends
from hashtags.messages import TopPostsUpdate


def hour_count_row(key: str, window_start: dt.datetime, count: int, display: str | None = None, *,
                   generation: int) -> DirectRow:
    """``counts:h.<generation>`` (and ``meta:display``) at the window start: the whole window's
    count as seen by that generation's job (see hashtags.layout, "Count generations")."""
    row = DirectRow(layout.row_key(key))
    ts = layout.cell_time(window_start)
    row.set_cell(layout.FAMILY_COUNTS, layout.hour_column(generation), layout.encode_count(count), timestamp=ts)
    if display:
        row.set_cell(layout.FAMILY_META, layout.COL_DISPLAY, display.encode("utf-8"), timestamp=ts)
    return row


def hour_accounts_row(key: str, window_start: dt.datetime, accounts: int, *, generation: int) -> DirectRow:
    """``counts:u.<generation>`` at the window start: distinct accounts in that hour seen by that
    generation's job (the whole window's figure, rewritten at each firing, like the hour count)."""
    row = DirectRow(layout.row_key(key))
    row.set_cell(layout.FAMILY_COUNTS, layout.accounts_column(generation), layout.encode_count(accounts),
                 timestamp=layout.cell_time(window_start))
    return row


def trends_row(computed_at: dt.datetime, entries: Sequence[trends.TrendEntry]) -> DirectRow:
    """The ranked list in the reserved row's ``meta:trends`` at the minute it was computed."""
    row = DirectRow(layout.TRENDS_ROW)
    row.set_cell(layout.FAMILY_META, layout.COL_TRENDS, trends.encode_trends(computed_at, entries),
                 timestamp=layout.cell_time(computed_at))
    return row


def base_count_row(key: str, as_of: dt.datetime, count: int) -> DirectRow:
    row = DirectRow(layout.row_key(key))
    row.set_cell(layout.FAMILY_COUNTS, layout.COL_BASE, layout.encode_count(count),
                 timestamp=layout.cell_time(as_of))
    return row


def top_posts_row(update: TopPostsUpdate) -> DirectRow:
    row = DirectRow(layout.row_key(update.hashtag))
    row.set_cell(layout.FAMILY_TOP, layout.COL_TOP_POSTS, layout.encode_top_posts(update.posts),
                 timestamp=layout.cell_time(update.computed_at))
    return row


def day_cells_row(key: str, as_of: dt.datetime, days: Mapping[dt.date, layout.DayCounts]) -> DirectRow:
    """``days:p.YYYYMMDD`` / ``days:a.YYYYMMDD`` at the run's ``as_of``, for each day in ``days``
    (a value is ``DayCounts(posts, accounts)`` or a plain ``(posts, accounts)`` pair; a None half
    writes no cell). A rerun of the same night rewrites the same cells."""
    row = DirectRow(layout.row_key(key))
    ts = layout.cell_time(as_of)
    for day, (posts, accounts) in sorted(days.items()):
        if posts is not None:
            row.set_cell(layout.FAMILY_DAYS, layout.day_posts_column(day), layout.encode_count(posts), timestamp=ts)
        if accounts is not None:
            row.set_cell(layout.FAMILY_DAYS, layout.day_accounts_column(day), layout.encode_count(accounts),
                         timestamp=ts)
    return row


def related_row(key: str, as_of: dt.datetime, related: Sequence[layout.RelatedTag]) -> DirectRow:
    """``meta:related`` at the run's ``as_of`` (an empty list is written too: it replaces a stale one)."""
    row = DirectRow(layout.row_key(key))
    row.set_cell(layout.FAMILY_META, layout.COL_RELATED, layout.encode_related(related),
                 timestamp=layout.cell_time(as_of))
    return row


def flags_row(key: str, flags: layout.Flags) -> DirectRow:
    """``meta:flags`` at ``flags.changed_at`` (the time of the change; required)."""
    if flags.changed_at is None:
        raise ValueError("moderation flags need changed_at (the cell's timestamp)")
    row = DirectRow(layout.row_key(key))
    row.set_cell(layout.FAMILY_META, layout.COL_FLAGS, layout.encode_flags(flags),
                 timestamp=layout.cell_time(flags.changed_at))
    return row


def hidden_index_row(key: str, flags: layout.Flags) -> DirectRow:
    """The tag's entry in the hidden-tags index row (layout.HIDDEN_INDEX_ROW), at the flags' time."""
    row = DirectRow(layout.HIDDEN_INDEX_ROW)
    row.set_cell(layout.FAMILY_META, layout.row_key(key), b"1" if flags.hidden else b"0",
                 timestamp=layout.cell_time(flags.changed_at))
    return row
