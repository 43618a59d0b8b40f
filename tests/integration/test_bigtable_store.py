"""The Bigtable adapter against the emulator: cells, the total rule, idempotence, GC rules."""
from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import bigtable

from hashtag_store import BigtableStore, StoreUnavailable, create_table, mutations
from hashtags import layout
from hashtags.history import usage_history
from hashtags.layout import DayCounts, Flags, RelatedTag, TopPost
from hashtags.messages import TopPostsUpdate
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator
UTC = dt.timezone.utc


def t(day, hour=0):
    return dt.datetime(2026, 11, day, hour, tzinfo=UTC)


def test_unknown_tag_reads_none(store):
    assert store.read_page("nothing") is None


def test_total_is_base_plus_hours_at_or_after_base(store):
    store.write_hour_counts([
        ("love", t(21, 23), 7, "Love"),  # before the base: already inside it
        ("love", t(22, 0), 5, "Love"),  # exactly at as_of: counted
        ("love", t(22, 13), -2, "LOVE"),  # after, negative (deletes): counted
    ])
    assert store.read_page("love").total_posts == 10  # no base yet: every hour cell
    store.write_base_counts([("love", 100)], as_of=t(22))
    doc = store.read_page("love")
    assert doc.total_posts == 103
    assert doc.display_name == "LOVE"  # latest window's spelling
    assert doc.base_as_of == t(22)
    assert doc.top_posts == ()
    assert doc.updated_at == t(22, 13)


def test_newer_base_replaces_older(store):
    store.write_base_counts([("x", 50)], as_of=t(21))
    store.write_hour_counts([("x", t(21, 5), 3, None), ("x", t(22, 1), 4, None)])
    assert store.read_page("x").total_posts == 57
    store.write_base_counts([("x", 60)], as_of=t(22))  # recount absorbed the 21st's hours
    assert store.read_page("x").total_posts == 64


def test_hour_writes_are_idempotent_on_replay(store):
    rows = [("a", t(22, 1), 3, "a"), ("b", t(22, 1), 9, "B"), ("a", t(22, 2), 1, "a")]
    store.write_hour_counts(rows)
    first = {k: store.read_page(k).total_posts for k in ("a", "b")}
    store.write_hour_counts(rows)
    store.write_hour_counts(rows[:1])
    assert {k: store.read_page(k).total_posts for k in ("a", "b")} == first == {"a": 4, "b": 9}


def test_accumulating_refiring_rewrites_same_cell(store):
    store.write_hour_counts([("a", t(22, 1), 3, None)])
    store.write_hour_counts([("a", t(22, 1), 5, None)])  # later pane of the same window
    assert store.read_page("a").total_posts == 5


def test_every_generation_counts_and_each_keeps_its_own_cell(store, table_name):
    store.write_base_counts([("g", 100)], as_of=t(22))
    store.write_hour_counts([("g", t(21, 23), 50, None), ("g", t(22, 9), 7, None)], generation=0)
    store.write_hour_counts([("g", t(22, 9), 4, None), ("g", t(22, 10), 2, None)], generation=1)
    store.write_hour_counts([("g", t(22, 9), 4, None)], generation=1)  # a replay of generation 1
    store.write_hour_counts([("g", t(22, 10), 1, None)], generation=12)
    # a cell inside the filter's [h., h/) range that is no generation's column: never counted
    row = bigtable.Client(project=PROJECT).instance(INSTANCE).table(table_name).direct_row(b"g")
    row.set_cell(layout.FAMILY_COUNTS, b"h.x", layout.encode_count(1000), timestamp=t(22, 11))
    row.commit()
    assert store.read_page("g").total_posts == 100 + 7 + 4 + 2 + 1
    assert [(k, n) for k, n, _ in store.scan_totals()] == [("g", 114)]
    raw = bigtable.Client(project=PROJECT).instance(INSTANCE).table(table_name).read_row(b"g")
    hours = {q: [(c.timestamp.astimezone(UTC), layout.decode_count(c.value)) for c in cells]
             for q, cells in raw.cells[layout.FAMILY_COUNTS].items() if layout.is_hour_column(q)}
    assert hours == {b"h.0": [(t(22, 9), 7), (t(21, 23), 50)], b"h.1": [(t(22, 10), 2), (t(22, 9), 4)],
                     b"h.12": [(t(22, 10), 1)]}


def test_top_posts_newest_computed_at_wins(store):
    new = TopPostsUpdate("cats", t(22, 10), (TopPost("p2", "https://img/2.jpg"), TopPost("p1", "https://img/1.jpg")))
    old = TopPostsUpdate("cats", t(22, 9), (TopPost("p9", "https://img/9.jpg"),))
    store.write_top_posts(new)
    store.write_top_posts(old)  # arrives late: must not replace
    doc = store.read_page("cats")
    assert [p.post_id for p in doc.top_posts] == ["p2", "p1"]
    assert doc.top_computed_at == t(22, 10)
    assert doc.total_posts == 0


def test_scan_totals(store):
    store.write_hour_counts([("a", t(22, 1), 3, None), ("b", t(22, 1), 2, None)])
    store.write_base_counts([("a", 10), ("c", 0)], as_of=t(22))
    assert sorted((k, n) for k, n, _ in store.scan_totals()) == [("a", 13), ("b", 2), ("c", 0)]


def test_create_table_applies_layout_gc_rules(bigtable_emulator, table_name):
    create_table(PROJECT, INSTANCE, table_name)
    create_table(PROJECT, INSTANCE, table_name)  # idempotent
    fams = bigtable.Client(project=PROJECT, admin=True).instance(INSTANCE).table(table_name).list_column_families()
    assert set(fams) == {"counts", "top", "meta", "days"}
    pb = fams["counts"].gc_rule.to_pb()
    assert pb.intersection.rules[0].max_num_versions == layout.BASE_VERSIONS_KEPT
    assert pb.intersection.rules[1].max_age == dt.timedelta(days=layout.HOUR_CELL_MAX_AGE_DAYS)
    assert fams["top"].gc_rule.to_pb().max_num_versions == 1
    assert fams["days"].gc_rule.to_pb().max_age == dt.timedelta(days=35)


def test_create_table_adds_the_days_family_to_an_existing_table(bigtable_emulator, table_name):
    old = {k: v for k, v in layout.COLUMN_FAMILIES.items() if k != layout.FAMILY_DAYS}
    create_table(PROJECT, INSTANCE, table_name, column_families=old)  # a table from before page v2
    create_table(PROJECT, INSTANCE, table_name)
    fams = bigtable.Client(project=PROJECT, admin=True).instance(INSTANCE).table(table_name).list_column_families()
    assert set(fams) == {"counts", "top", "meta", "days"}
    assert fams["days"].gc_rule.to_pb().max_age == dt.timedelta(days=35)


def test_outage_raises_store_unavailable(monkeypatch):
    from devstack.emulators import free_port

    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", f"localhost:{free_port()}")  # nothing listens
    s = BigtableStore(PROJECT, INSTANCE, "hashtags", read_timeout=0.5)
    with pytest.raises(StoreUnavailable):
        s.read_page("love")


# ---- page v2: days, related, flags in the same one-row read ----------------------------------------
def test_page_read_brings_history_related_and_flags(store):
    run = t(29)
    now = t(30, 10) + dt.timedelta(minutes=30)
    store.write_base_counts([("love", 500)], as_of=run)
    store.write_hour_counts([("love", t(28, 23), 50, "Love"), ("love", t(29, 0), 3, "Love"),
                             ("love", t(29, 23), 2, None), ("love", t(30, 10), 2, None)])
    store.write_hour_counts([("love", t(29, 0), 4, None), ("love", t(30, 9), 1, None)], generation=1)
    store.mutate([
        mutations.day_cells_row("love", t(28), {dt.date(2026, 11, 27): DayCounts(39, 20)}),  # an older run
        mutations.day_cells_row("love", run, {dt.date(2026, 11, 28): DayCounts(40, 17),
                                              dt.date(2026, 11, 27): DayCounts(30, None),
                                              dt.date(2026, 11, 24): DayCounts(12, 5)}),
        mutations.related_row("love", t(28), [RelatedTag("stale", 9)]),
        mutations.related_row("love", run, [RelatedTag("heart", 8), RelatedTag("café", 3)]),
    ])
    written = store.write_flags("love", Flags(sensitive=True, reason="nsfw", by="ops",
                                              changed_at=t(29, 8) + dt.timedelta(microseconds=1500)))
    assert written.changed_at == t(29, 8) + dt.timedelta(microseconds=1500)

    calls = store._pages.calls
    doc = store.read_page("love")
    assert store._pages.calls == calls + 1  # one ReadRows call for the whole page
    assert doc.total_posts == 500 + 3 + 4 + 2 + 2 + 1
    assert doc.related == (RelatedTag("heart", 8), RelatedTag("café", 3)) and doc.related_as_of == run
    assert doc.flags == Flags(sensitive=True, reason="nsfw", by="ops", changed_at=t(29, 8) + dt.timedelta(microseconds=1000))
    h = usage_history(doc, now)
    assert [(p.day.day, p.posts, p.accounts, p.exact) for p in h.days] == [
        (30, 3, None, False), (29, 9, None, False), (28, 40, 17, True), (27, 30, 20, True),
        (26, 0, None, True), (25, 0, None, True), (24, 12, 5, True)]
    assert [(p.start, p.posts) for p in h.hours if p.posts] == [(t(29, 23), 2), (t(30, 9), 1), (t(30, 10), 2)]
    assert len(h.hours) == 24 and h.hours[-1].start == t(30, 10)


def test_the_page_filter_returns_only_the_latest_days_versions(store):
    store.mutate([mutations.day_cells_row("love", t(d), {dt.date(2026, 11, 20): DayCounts(d, d)}) for d in (21, 22, 23)])
    store.write_base_counts([("love", 1)], as_of=t(23))
    cells = store._page_reader.read(layout.row_key("love"))
    assert sorted((f, q, n) for f, q, _, n in cells if f == "days") == [
        ("days", b"a.20261120", layout.encode_count(23)), ("days", b"p.20261120", layout.encode_count(23))]


def test_hide_then_clear_and_hidden_tags(store):
    store.write_hour_counts([("love", t(22, 1), 3, None), ("spam", t(22, 1), 9, None), ("nsfw", t(22, 1), 2, None)])
    assert store.hidden_tags() == frozenset() and store.read_flags("spam") == Flags()
    store.write_flags("spam", Flags(hidden=True, reason="spam wave", by="ops", changed_at=t(22, 2)))
    store.write_flags("nsfw", Flags(sensitive=True, reason="adult", by="ops", changed_at=t(22, 2)))
    store.write_flags("ghost", Flags(hidden=True, reason="pre-emptive", by="ops", changed_at=t(22, 2)))  # no posts yet
    assert store.hidden_tags() == frozenset({"spam", "ghost"})
    assert store.read_page("spam").flags.hidden and store.read_page("spam").total_posts == 9
    assert store.read_page("ghost") is None  # a flags-only row is not a page
    store.write_flags("spam", Flags(reason="false alarm", by="ops", changed_at=t(22, 3)))
    store.write_flags("ghost", Flags(reason="lifted", by="ops", changed_at=t(22, 3)))
    assert store.hidden_tags() == frozenset()
    assert store.read_flags("spam") == Flags(reason="false alarm", by="ops", changed_at=t(22, 3))
    assert store.read_page("ghost") is None
    assert store.read_flags("nobody") == Flags()
