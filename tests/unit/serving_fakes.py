"""An in-memory stand-in for BigtableStore, for tests of the code ABOVE the store (the views, the
cache, the headers). The store itself is tested against the emulator."""
from __future__ import annotations

import datetime as dt
import random

from hashtag_store import StoreUnavailable
from hashtags.layout import PageDocument, TopPost
from hashtags.trends import TrendList


class FakeStore:
    def __init__(self, docs: dict[str, PageDocument] | None = None):
        self.docs = dict(docs or {})
        self.reads: list[str] = []
        self.pings = 0
        self.down = False
        self.trends = TrendList(None)
        self.trends_reads = 0
        self.trends_down = False  # only the trends row fails

    def read_page(self, key: str) -> PageDocument | None:
        self.reads.append(key)
        if self.down:
            raise StoreUnavailable("fake outage")
        return self.docs.get(key)

    def read_trends(self) -> TrendList:
        self.trends_reads += 1
        if self.down or self.trends_down:
            raise StoreUnavailable("fake outage")
        return self.trends

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise StoreUnavailable("fake outage")


def realistic_posts(n: int = 100, seed: int = 7) -> tuple[TopPost, ...]:
    """Post ids and image URLs shaped like production ones (snowflake ids, hashed CDN paths): random
    hex does not compress, so size budgets measured on these are honest."""
    rng = random.Random(seed)
    posts = []
    for _ in range(n):
        pid = str(rng.randrange(10**18, 10**19))
        posts.append(TopPost(pid, f"https://img.example-cdn.com/p/{rng.getrandbits(128):032x}.jpg"))
    return tuple(posts)


def doc(key: str = "love", display: str = "Love", total: int = 1_234_567, posts=None) -> PageDocument:
    return PageDocument(key, display, total, realistic_posts() if posts is None else tuple(posts),
                        updated_at=dt.datetime(2026, 11, 23, 10, tzinfo=dt.timezone.utc))
