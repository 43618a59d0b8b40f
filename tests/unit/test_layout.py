"""hashtags.layout additions for page v2: day columns, related tags, moderation flags, and the page
document's history fields (decoders are total: a bad cell reads as empty, never raises)."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashtags import layout
from hashtags.layout import Cell, DayUse, Flags, HourUse, RelatedTag

UTC = dt.timezone.utc


def ms(ts: dt.datetime) -> int:
    return layout.to_millis(ts)


def test_days_family_keeps_35_days_by_age_only():
    assert layout.COLUMN_FAMILIES[layout.FAMILY_DAYS] == layout.GcRule(max_age_days=35)


def test_day_columns_name_the_day():
    day = dt.date(2026, 12, 1)
    assert layout.day_posts_column(day) == b"p.20261201"
    assert layout.day_accounts_column(day) == b"a.20261201"
    assert layout.parse_day_column(b"p.20261201") == ("p", day)
    assert layout.parse_day_column(b"a.20261201") == layout.DayColumn("a", day)


@pytest.mark.parametrize("q", [b"p.2026120", b"p.202612011", b"x.20261201", b"p.20261301", b"p.2026-12-", b"p20261201",
                               b"p.\xd9\xa2\xd9\xa0\xd9\xa2\xd9\xa6", b"", b"h.0", b"base"])
def test_parse_day_column_rejects_other_qualifiers(q):
    assert layout.parse_day_column(q) is None


def test_day_column_needs_a_date_not_a_datetime():
    with pytest.raises(ValueError):
        layout.day_posts_column(dt.datetime(2026, 12, 1, tzinfo=UTC))


@given(st.dates(min_value=dt.date(1000, 1, 1)))
@settings(max_examples=50, deadline=None)
def test_day_columns_round_trip(day):
    assert layout.parse_day_column(layout.day_posts_column(day)) == ("p", day)
    assert layout.parse_day_column(layout.day_accounts_column(day)) == ("a", day)


def test_related_round_trip_keeps_order():
    tags = (RelatedTag("café", 12), RelatedTag("love", 3))
    assert layout.decode_related(layout.encode_related(tags)) == tags
    assert layout.encode_related(tags) == '[{"tag":"café","posts":12},{"tag":"love","posts":3}]'.encode()


def test_related_encoder_refuses_more_than_ten():
    with pytest.raises(ValueError):
        layout.encode_related([RelatedTag(f"t{i}", 3) for i in range(11)])


@pytest.mark.parametrize("value", [b"", b"\xff", b"{", b"{}", b'"x"', b"null", b"[" * 5000])
def test_undecodable_related_is_empty(value):
    assert layout.decode_related(value) == ()


def test_related_decoder_drops_malformed_entries_and_keeps_ten():
    value = (b'[{"tag":"a","posts":5},{"tag":"","posts":4},{"tag":"b","posts":true},{"tag":"c","posts":-1},'
             b'{"tag":7,"posts":3},"d",{"tag":"e","posts":3.5},{"tag":"f","posts":3}]')
    assert layout.decode_related(value) == (RelatedTag("a", 5), RelatedTag("f", 3))
    many = b"[" + b",".join(b'{"tag":"t%d","posts":%d}' % (i, 20 - i) for i in range(12)) + b"]"
    assert [t.tag for t in layout.decode_related(many)] == [f"t{i}" for i in range(10)]


def test_flags_round_trip():
    flags = Flags(hidden=True, sensitive=False, reason="spam wave", by="ops@example",
                  changed_at=dt.datetime(2026, 12, 1, 11, 40, 0, 123456, tzinfo=UTC))
    encoded = layout.encode_flags(flags)
    assert encoded == (b'{"hidden":true,"sensitive":false,"reason":"spam wave","by":"ops@example",'
                       b'"changed_at":"2026-12-01T11:40:00.123Z","trend":"pending"}')
    assert layout.decode_flags(encoded) == Flags(True, False, "spam wave", "ops@example",
                                                 dt.datetime(2026, 12, 1, 11, 40, 0, 123000, tzinfo=UTC))
    assert layout.decode_flags(layout.encode_flags(Flags())) == Flags()


@pytest.mark.parametrize("value", [b"", b"\xff", b"[]", b"1", b'{"hidden":"yes"}', b'{"hidden":1}',
                                   b'{"sensitive":null}', b'{"hidden":true,"reason":5}'])
def test_undecodable_flags_are_no_flags(value):
    assert layout.decode_flags(value) == Flags()


def test_flags_with_a_bad_timestamp_keep_the_flags():
    assert layout.decode_flags(b'{"hidden":true,"sensitive":true,"changed_at":"yesterday"}') == \
        Flags(hidden=True, sensitive=True)
    assert layout.decode_flags(b'{"hidden":true,"changed_at":"2026-12-01T10:00:00"}').changed_at is None  # no offset
    assert layout.decode_flags(b'{"hidden":true,"changed_at":"2026-12-01T11:00:00+01:00"}').changed_at == \
        dt.datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_page_document_fills_history_related_and_flags():
    base_at = dt.datetime(2026, 11, 30, tzinfo=UTC)
    h1, h2 = base_at + dt.timedelta(hours=1), base_at + dt.timedelta(hours=2)
    flags = Flags(sensitive=True, reason="nsfw", by="ops", changed_at=dt.datetime(2026, 11, 30, 9, tzinfo=UTC))
    doc = layout.page_document(
        "love",
        base=Cell(layout.encode_count(100), ms(base_at)),
        hours=[Cell(layout.encode_count(4), ms(h2)), Cell(layout.encode_count(5), ms(h1)),
               Cell(layout.encode_count(2), ms(h1))],  # a second generation's cell for the same hour: adds
        top=None,
        display=None,
        days=[(b"p.20261129", Cell(layout.encode_count(40), ms(base_at))),
              (b"p.20261129", Cell(layout.encode_count(39), ms(base_at) - 86_400_000)),  # older version
              (b"a.20261129", Cell(layout.encode_count(17), ms(base_at))),
              (b"a.20261128", Cell(layout.encode_count(9), ms(base_at))),  # accounts only
              (b"p.20261127", Cell(layout.encode_count(30), ms(base_at))),
              (b"p.20261126", Cell(b"\x00", ms(base_at))),  # undecodable: skipped
              (b"x.20261125", Cell(layout.encode_count(1), ms(base_at)))],  # not a day column
        related=Cell(layout.encode_related([RelatedTag("heart", 8)]), ms(base_at)),
        flags=Cell(layout.encode_flags(flags), ms(flags.changed_at)),
    )
    assert doc.hours == (HourUse(h1, 7), HourUse(h2, 4))
    assert doc.days == (DayUse(dt.date(2026, 11, 27), 30, None), DayUse(dt.date(2026, 11, 28), 0, 9),
                        DayUse(dt.date(2026, 11, 29), 40, 17))
    assert doc.related == (RelatedTag("heart", 8),)
    assert doc.related_as_of == base_at
    assert doc.flags == flags
    assert doc.updated_at == h2  # the count/top/display cells only, as before
    assert set(doc.to_json()) == {"hashtag", "display_name", "total_posts", "top_posts", "updated_at"}


def test_page_document_without_new_cells_has_defaults():
    doc = layout.page_document("love", base=None, hours=[], top=None, display=None,
                               related=Cell(b"garbage", 5), flags=Cell(b"{", 6))
    assert (doc.hours, doc.days, doc.related, doc.flags) == ((), (), (), Flags())
    assert doc.related_as_of == layout.from_millis(5)


def test_hour_uses_skip_cells_that_are_not_counts():
    assert layout.hour_uses([Cell(b"bad", 3_600_000), Cell(layout.encode_count(2), 3_600_000)]) == \
        (HourUse(layout.from_millis(3_600_000), 2),)


def test_hour_uses_keep_the_days_a_history_can_show():
    newest = dt.datetime(2026, 12, 1, 10, tzinfo=UTC)
    first = dt.datetime(2026, 11, 24, tzinfo=UTC)  # midnight, 7 days before the newest cell's day
    cells = [Cell(layout.encode_count(n), ms(ts)) for n, ts in
             [(1, newest), (2, first), (4, first - dt.timedelta(hours=1)), (8, newest - dt.timedelta(days=13))]]
    assert layout.hour_uses(cells) == (HourUse(first, 2), HourUse(newest, 1))
    assert layout.page_document("t", base=None, hours=cells, top=None, display=None).total_posts == 15
