"""The in-process page cache: short freshness, bounded size, thread-safe, keeps last good copies.

One entry per row key: the page document read (``None`` for a tag with no row, so a flood of 404s
cannot hammer the table) and, filled lazily, its encoded representations (plain and gzip, each with
a strong ETag). An entry is *fresh* for ``ttl`` seconds; expired entries stay, up to
``stale_if_error`` seconds within the same size bound, as the *last good copy*, served marked stale
only when the store is unavailable.
"""
from __future__ import annotations

import gzip
import hashlib
import threading
import time
from typing import Callable

from cachetools import TTLCache

from hashtags.layout import PageDocument

STALE_IF_ERROR_SECONDS = 3600.0


class Body:
    """One encoded representation with its strong validators (ETags without quotes). The gzip
    variant is compressed on first use (most load tools and many proxies never ask for it)."""

    __slots__ = ("data", "etag", "gzip_etag", "_gzip")

    def __init__(self, data: bytes):
        self.data = data
        self.etag = hashlib.blake2b(data, digest_size=12).hexdigest()
        self.gzip_etag = self.etag + "-gz"
        self._gzip: bytes | None = None

    @property
    def gzip_data(self) -> bytes:
        if self._gzip is None:
            # mtime=0: the same bytes always compress to the same bytes (stable across workers)
            self._gzip = gzip.compress(self.data, compresslevel=6, mtime=0)
        return self._gzip


class Entry:
    __slots__ = ("doc", "fetched_at", "bodies")

    def __init__(self, doc: PageDocument | None, fetched_at: float):
        self.doc = doc
        self.fetched_at = fetched_at
        self.bodies: dict[str, Body] = {}

    def body(self, kind: str, render: Callable[[PageDocument | None], bytes]) -> Body:
        """The representation ``kind``, rendered on first use (racing threads render the same bytes)."""
        b = self.bodies.get(kind)
        if b is None:
            b = self.bodies[kind] = Body(render(self.doc))
        return b


class PageCache:
    def __init__(self, maxsize: int, ttl: float, stale_if_error: float = STALE_IF_ERROR_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        # TTLCache bounds size (LRU eviction) and drops copies too old to serve even as stale.
        self._entries: TTLCache = TTLCache(maxsize=max(1, maxsize), ttl=max(ttl, stale_if_error), timer=clock)

    def get(self, key: str) -> tuple[Entry | None, bool]:
        """(entry or None, fresh?)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry, entry is not None and self._clock() - entry.fetched_at < self.ttl

    def put(self, key: str, doc: PageDocument | None) -> Entry:
        entry = Entry(doc, self._clock())
        with self._lock:
            self._entries[key] = entry
        return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
