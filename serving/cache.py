"""The in-process page cache: short freshness, bounded by BYTES, thread-safe, keeps last good copies.

One entry per row key: the page document read (``None`` for a tag with no row, so a flood of 404s
cannot hammer the table) and, filled lazily, its encoded representations (plain and gzip, each with
a strong ETag). An entry is *fresh* for ``ttl`` seconds; expired entries stay, up to
``stale_if_error`` seconds, as the *last good copy*, served marked stale only when the store is
unavailable.

The bound is the bytes the entries hold (documents, rendered bodies, gzip bodies, keys: stale copies
included), not their number: a long tail of distinct tags (a crawler, or ordinary traffic) filled a
10,000-entry cache to ~53 KB a tag, 631 MB per worker (issue 21). Every body rendered after the
entry went in is charged when it is added, and the least recently used entries go until the total is
back within the budget. The sizes are estimates of what CPython allocates (:func:`doc_bytes`,
:data:`BODY_OVERHEAD`), checked against ``tracemalloc`` by tests/unit/test_serving_cache.py.
"""
from __future__ import annotations

import gzip
import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from typing import Callable

from hashtags.layout import PageDocument

STALE_IF_ERROR_SECONDS = 3600.0

# CPython 3.11 object sizes (64-bit), per object, as sys.getsizeof reports them plus allocator
# rounding: a bytes object is 33 + len, an ASCII str 49 + len (UCS-2/4 text more: counted as 4/char
# for non-ASCII), a non-slotted dataclass instance with its dict ~150, a slotted one/NamedTuple ~72.
_STR = 49
_BYTES = 33
_DATACLASS = 152  # TopPost: object + instance dict (key-sharing)
_SMALL = 72  # HourUse (NamedTuple of 2), DayUse / RelatedTag (slots)
_DATETIME = 48
_INT = 32
_DOC = 1_000  # the PageDocument (non-slotted dataclass, 12 fields), its tuples, Flags, datetimes
# Entry (slots) + its bodies dict + its place in the OrderedDict (node, hash slot) + the key string
ENTRY_OVERHEAD = 600
# Body (slots, 5 fields) + its weak reference to the entry + two ETag strings (24 and 27
# characters) + the bytes object header
BODY_OVERHEAD = 64 + 80 + 2 * (_STR + 28) + _BYTES


def _text(s: str) -> int:
    return _STR + (len(s) if s.isascii() else 4 * len(s))


def doc_bytes(doc: PageDocument | None) -> int:
    """Estimated bytes a page document holds (what it keeps alive in the cache)."""
    if doc is None:
        return 0
    n = _DOC + _text(doc.hashtag) + _text(doc.display_name)
    posts = doc.top_posts
    # one byte a character: ids and image URLs are ASCII in practice, and this runs on every miss
    # (the per-string form cost ~110 µs a page, this ~10 µs)
    n += len(posts) * (_DATACLASS + 8 + 2 * _STR) + sum([len(p.post_id) + len(p.image_url) for p in posts])
    n += len(doc.hours) * (_SMALL + _DATETIME + _INT + 8)
    n += len(doc.days) * (_SMALL + 32 + _INT * 2 + 8)  # date, posts, accounts
    n += sum([_SMALL + 8 + _text(r.tag) + _INT for r in doc.related])
    n += _text(doc.flags.reason) + _text(doc.flags.by)
    return n


class Body:
    """One encoded representation with its strong validators (ETags without quotes). The gzip
    variant is compressed on first use (most load tools and many proxies never ask for it) and
    charged to its entry's size then."""

    __slots__ = ("data", "etag", "gzip_etag", "_gzip", "_entry")

    def __init__(self, data: bytes, entry: Entry | None = None):
        self.data = data
        self.etag = hashlib.blake2b(data, digest_size=12).hexdigest()
        self.gzip_etag = self.etag + "-gz"
        self._gzip: bytes | None = None
        # weak: a Body <-> Entry cycle would leave every evicted entry to the cyclic collector,
        # which the production GC tuning (tune_gc) runs rarely: the crawl test saw 4x the budget
        self._entry = weakref.ref(entry) if entry is not None else None

    @property
    def gzip_data(self) -> bytes:
        if self._gzip is None:
            # mtime=0: the same bytes always compress to the same bytes (stable across workers)
            z = gzip.compress(self.data, compresslevel=6, mtime=0)
            if self._gzip is None:  # racing threads compress the same bytes: charge once
                self._gzip = z
                entry = self._entry() if self._entry is not None else None
                if entry is not None:
                    entry.grow(_BYTES + len(z))
        return self._gzip


class Entry:
    __slots__ = ("key", "doc", "fetched_at", "bodies", "size", "_cache", "__weakref__")

    def __init__(self, key: str, doc: PageDocument | None, fetched_at: float, cache: PageCache | None = None):
        self.key = key
        self.doc = doc
        self.fetched_at = fetched_at
        self.bodies: dict[str, Body] = {}
        self.size = ENTRY_OVERHEAD + _text(key) + doc_bytes(doc)
        self._cache = cache

    def body(self, kind: str, render: Callable[[PageDocument | None], bytes]) -> Body:
        """The representation ``kind``, rendered on first use (racing threads render the same bytes;
        the first one kept is the one charged)."""
        b = self.bodies.get(kind)
        if b is None:
            new = Body(render(self.doc), self)
            b = self.bodies.setdefault(kind, new)
            if b is new:
                self.grow(BODY_OVERHEAD + len(new.data))
        return b

    def grow(self, n: int) -> None:
        if self._cache is not None:
            self._cache._charge(self, n)
        else:
            self.size += n


class PageCache:
    """LRU over entries, bounded by ``max_bytes`` (their estimated sizes); entries older than
    ``max(ttl, stale_if_error)`` are dropped when met."""

    def __init__(self, max_bytes: int, ttl: float, stale_if_error: float = STALE_IF_ERROR_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.max_bytes = max(0, max_bytes)
        self.ttl = ttl
        self._keep = max(ttl, stale_if_error)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self.evictions = 0  # entries dropped for room (for tests, the metrics and the benchmark)

    def get(self, key: str) -> tuple[Entry | None, bool]:
        """(entry or None, fresh?)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, False
            age = self._clock() - entry.fetched_at
            if age >= self._keep:
                self._drop(entry)
                return None, False
            self._entries.move_to_end(key)
            return entry, age < self.ttl

    def put(self, key: str, doc: PageDocument | None) -> Entry:
        entry = Entry(key, doc, self._clock(), self)
        with self._lock:
            old = self._entries.get(key)
            if old is not None:
                self._drop(old)
            if entry.size <= self.max_bytes:  # a page bigger than the whole budget is served, not kept
                self._entries[key] = entry
                self._bytes += entry.size
                self._evict()
        return entry

    def _charge(self, entry: Entry, n: int) -> None:
        with self._lock:
            entry.size += n
            if self._entries.get(entry.key) is entry:
                self._bytes += n
                if entry.size > self.max_bytes:
                    self._drop(entry)
                self._evict()

    def _drop(self, entry: Entry) -> None:
        del self._entries[entry.key]
        self._bytes -= entry.size

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            self._bytes -= entry.size
            self.evictions += 1

    @property
    def bytes(self) -> int:
        """The accounted size of every entry kept (never above ``max_bytes``)."""
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
