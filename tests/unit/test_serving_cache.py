"""The page cache's byte budget (serving/cache.py): what it charges, what it evicts, and that its
estimates are not below what CPython really allocates (tracemalloc)."""
from __future__ import annotations

import datetime as dt
import gc
import tracemalloc

from hashtags import layout
from hashtags.layout import DayUse, HourUse, PageDocument, RelatedTag, TopPost
from hashtags.settings import Settings
from serving import create_app
from serving.cache import BODY_OVERHEAD, PageCache, doc_bytes
from tests.unit.serving_fakes import doc

UTC = dt.timezone.utc


def big_doc(tag: str, posts: int = 100) -> PageDocument:
    day = dt.datetime(2026, 11, 22, tzinfo=UTC)
    return PageDocument(
        hashtag=tag, display_name=tag.upper(), total_posts=12_345,
        top_posts=tuple(TopPost(f"{tag}-post-{i:04d}", f"https://img.example-cdn.com/{tag}/{i:04d}.jpg?w=320")
                        for i in range(posts)),
        updated_at=day, base_as_of=day, top_computed_at=day,
        hours=tuple(HourUse(day - dt.timedelta(hours=h), h) for h in range(layout.HOURS_KEPT_DAYS * 24)),
        days=tuple(DayUse(day.date() - dt.timedelta(days=d), d * 3, d) for d in range(30)),
        related=tuple(RelatedTag(f"{tag}-rel{i}", i) for i in range(10)),
    )


def test_entries_are_charged_for_documents_bodies_and_gzip(clock):
    cache = PageCache(10_000_000, ttl=5, clock=clock)
    d = big_doc("love")
    entry = cache.put("love", d)
    base = cache.bytes
    assert base == entry.size and base >= doc_bytes(d) > 100 * 100  # 100 posts of ~100 characters each
    body = entry.body("html", lambda _doc: b"x" * 20_000)
    assert cache.bytes == base + BODY_OVERHEAD + 20_000
    entry.body("html", lambda _doc: b"never rendered")  # the same kind again: no charge
    assert cache.bytes == base + BODY_OVERHEAD + 20_000
    z = body.gzip_data
    assert cache.bytes == base + BODY_OVERHEAD + 20_000 + 33 + len(z) == entry.size
    body.gzip_data  # compressed once, charged once
    assert cache.bytes == entry.size


def test_the_budget_bounds_bytes_and_evicts_least_recently_used(clock):
    entry_size = PageCache(10**9, ttl=5, clock=clock).put("k000", doc("k000", "K", 1)).size
    cache = PageCache(10 * entry_size + entry_size // 2, ttl=5, clock=clock)
    for i in range(10):
        cache.put(f"k{i:03d}", doc(f"k{i:03d}", "K", 1))
    assert len(cache) == 10 and cache.evictions == 0
    assert cache.get("k000")[0] is not None  # used: now the most recent
    cache.put("k010", doc("k010", "K", 1))
    assert len(cache) == 10 and cache.evictions == 1
    assert cache.get("k001") == (None, False) and cache.get("k000")[0] is not None
    # a body rendered later makes room by evicting others, never the budget exceeded
    cache.get("k010")[0].body("html", lambda _d: b"y" * (3 * entry_size))
    assert cache.bytes <= cache.max_bytes and len(cache) == 7 and cache.get("k010")[1] is True


def test_stale_copies_count_and_expire(clock):
    cache = PageCache(10**7, ttl=5, stale_if_error=60, clock=clock)
    cache.put("a", doc("a", "A", 1)).body("html", lambda _d: b"z" * 1000)
    held = cache.bytes
    clock.now += 30  # expired, kept as the last good copy: still charged
    entry, fresh = cache.get("a")
    assert entry is not None and not fresh and cache.bytes == held
    clock.now += 31  # too old even as a stale copy: dropped, its bytes freed
    assert cache.get("a") == (None, False) and cache.bytes == 0 and len(cache) == 0


def test_a_page_larger_than_the_budget_is_served_but_not_kept(clock):
    cache = PageCache(2_000, ttl=5, clock=clock)
    entry = cache.put("big", big_doc("big"))
    assert entry.doc.total_posts == 12_345 and len(cache) == 0 and cache.bytes == 0
    small = cache.put("s", None)
    small.body("html", lambda _d: b"q" * 5_000)  # grows beyond the budget: dropped
    assert len(cache) == 0 and cache.bytes == 0


def test_replacing_an_entry_frees_the_old_one(clock):
    cache = PageCache(10**7, ttl=5, clock=clock)
    cache.put("a", big_doc("a")).body("json", lambda _d: b"j" * 5000)
    cache.put("a", doc("a", "A", 1))
    assert len(cache) == 1 and cache.bytes == cache.get("a")[0].size


def test_the_estimate_is_not_below_what_python_allocates(clock):
    """Fill a cache with 200 realistic entries (documents with 100 posts, a week of hours, 30 days,
    10 related tags; HTML, JSON and gzip bodies) and compare the accounted bytes with tracemalloc's
    count of what those entries allocated: the estimate may be generous, never short by more than
    10 % (the budget is what the crawl test and production rely on)."""
    cache = PageCache(10**9, ttl=5, clock=clock)
    docs = [big_doc(f"tag{i:04d}") for i in range(200)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, d in enumerate(docs):
        e = cache.put(d.hashtag, d)
        e.body("html", lambda _d, i=i: (b"<li>%d</li>" % i) * 2_000)
        e.body("json", lambda _d, i=i: (b'{"n":%d}' % i) * 800).gzip_data
    del e
    gc.collect()
    allocated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # the documents were built before tracing (doc_bytes is checked by the next test): the rest
    accounted = cache.bytes - sum(doc_bytes(d) for d in docs)
    assert 0.9 * allocated <= accounted <= 2 * allocated, (accounted, allocated)


def test_the_estimate_of_documents_against_tracemalloc():
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    docs = [big_doc(f"tag{i:04d}") for i in range(100)]
    allocated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    estimated = sum(doc_bytes(d) for d in docs)
    assert 0.9 * allocated <= estimated <= 1.6 * allocated, (estimated, allocated)


def test_settings_budget_reaches_the_cache(fake_store, clock):
    app = create_app(Settings.from_env({"HASHTAGS_PAGE_CACHE_BYTES": "123456"}), fake_store, clock=clock)
    assert app.services.cache.max_bytes == 123_456
    assert Settings().page_cache_bytes == 64 * 1024 * 1024
