"""hashtag_store.mutations for page v2 (day cells, related tags, flags): the cells they set, at the
timestamps the layout says (the same DirectRows the store and Beam's WriteToBigTable apply)."""
from __future__ import annotations

import datetime as dt

import pytest

from hashtag_store import mutations
from hashtags import layout
from hashtags.layout import DayCounts, Flags, RelatedTag

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 12, 1, tzinfo=UTC)


def cells(row):
    return [(m.family, m.qualifier, m.timestamp_micros, m.new_value)
            for m in row._get_mutations()]


def test_day_cells_row_writes_posts_and_accounts_at_as_of():
    row = mutations.day_cells_row("love", AS_OF, {dt.date(2026, 11, 30): DayCounts(40, 17),
                                                  dt.date(2026, 11, 29): (12, None),  # a plain pair works too
                                                  dt.date(2026, 11, 28): DayCounts(None, 3)})
    us = layout.to_millis(AS_OF) * 1000
    assert row.row_key == b"love"
    assert cells(row) == [
        ("days", b"a.20261128", us, layout.encode_count(3)),
        ("days", b"p.20261129", us, layout.encode_count(12)),
        ("days", b"p.20261130", us, layout.encode_count(40)),
        ("days", b"a.20261130", us, layout.encode_count(17)),
    ]


def test_related_row_writes_the_list_at_as_of():
    row = mutations.related_row("love", AS_OF, [RelatedTag("heart", 8), RelatedTag("café", 3)])
    assert cells(row) == [("meta", b"related", layout.to_millis(AS_OF) * 1000,
                           layout.encode_related([RelatedTag("heart", 8), RelatedTag("café", 3)]))]
    assert cells(mutations.related_row("love", AS_OF, []))[0][3] == b"[]"


def test_flags_row_writes_at_the_change_time():
    at = dt.datetime(2026, 12, 1, 11, 50, 1, 234567, tzinfo=UTC)
    flags = Flags(hidden=True, reason="spam", by="ops", changed_at=at)
    assert cells(mutations.flags_row("love", flags)) == [
        ("meta", b"flags", 1_796_125_801_234_000, layout.encode_flags(flags))]
    with pytest.raises(ValueError):
        mutations.flags_row("love", Flags(hidden=True))
