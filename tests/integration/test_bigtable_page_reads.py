"""The page read path (plain gRPC ReadRows, coalesced across threads) against the emulator, checked
against the Bigtable data client's own read_row with the same filter."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from hashtag_store import mutations
from hashtag_store.bigtable import PAGE_FILTER, document_from_row
from hashtags import layout
from hashtags.layout import DayCounts, Flags, RelatedTag, TopPost
from hashtags.messages import TopPostsUpdate

pytestmark = pytest.mark.emulator
UTC = dt.timezone.utc


def _fill(store, n):
    day = dt.datetime(2026, 11, 22, tzinfo=UTC)
    keys = [f"t{i:03d}" for i in range(n)]
    store.write_base_counts([(k, 1000 * i) for i, k in enumerate(keys)], as_of=day)
    store.write_hour_counts([(k, day + dt.timedelta(hours=h), i + h, k.upper()) for i, k in enumerate(keys)
                             for h in (-1, 2, 5)])
    for i, k in enumerate(keys):
        posts = tuple(TopPost(f"{k}-{j}", f"https://img.example.com/{k}/{j}.jpg?a=1&b={j}") for j in range(i % 7 * 15))
        store.write_top_posts(TopPostsUpdate(k, day + dt.timedelta(hours=i % 5), posts))
    # page v2 cells, two versions of some, on a subset of the rows
    store.mutate([mutations.day_cells_row(k, day - dt.timedelta(days=back),
                                          {dt.date(2026, 11, 20): DayCounts(i + back, i if back else None)})
                  for i, k in enumerate(keys) if i % 2 for back in (0, 1)])
    store.mutate([mutations.related_row(k, day, [RelatedTag(keys[(i + 1) % n], i + 3)]) for i, k in enumerate(keys)
                  if i % 3])
    for i, k in enumerate(keys[::4]):
        store.write_flags(k, Flags(hidden=bool(i % 2), sensitive=True, reason=f"r{i}", by="ops",
                                   changed_at=day + dt.timedelta(minutes=i)))
    return keys


def test_page_reads_equal_the_data_client(store):
    keys = _fill(store, 12)
    for k in [*keys, "missing"]:
        row = store._reader.read_row(layout.row_key(k), row_filter=PAGE_FILTER)
        expected = None if row is None else document_from_row(k, row)
        assert store.read_page(k) == expected
    docs = [store.read_page(k) for k in keys]
    assert sum(bool(d.days) for d in docs) == 6 and sum(bool(d.related) for d in docs) == 8
    assert [d.flags.reason for d in docs[::4]] == ["r0", "r1", "r2"]
    assert docs[1].days == (layout.DayUse(dt.date(2026, 11, 20), 1, 1),)  # the newer version of each column


def test_concurrent_page_reads_each_get_their_own_row(store):
    keys = _fill(store, 40)
    expected = {k: store.read_page(k) for k in keys}
    assert all(expected[k].total_posts == 1000 * i + (i + 2) + (i + 5) for i, k in enumerate(keys))
    wanted = [*keys, "missing", "also-missing"] * 4
    got: dict[int, list] = {}
    errors = []

    def worker(t):
        try:
            got[t] = [(k, store.read_page(k)) for k in wanted[t::16]]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    pairs = [p for t in range(16) for p in got[t]]
    assert len(pairs) == len(wanted)
    for k, doc in pairs:
        assert doc == expected.get(k), k
    assert store._pages.calls <= len(wanted) + len(keys) + 1
