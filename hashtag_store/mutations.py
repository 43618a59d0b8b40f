"""Row mutations for the table layout, as google-cloud-bigtable ``DirectRow``s.

Both the adapter and Beam's ``WriteToBigTable`` (which takes DirectRows) use these, so a cell is
written the same way whichever path writes it. Every mutation is a SetCell at an explicit timestamp:
idempotent under retries and replays.
"""
from __future__ import annotations

import datetime as dt

from google.cloud.bigtable.row import DirectRow

from hashtags import layout
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
