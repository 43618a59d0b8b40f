"""The "Trending" mark on a tag page (issue 19): shown when the tag is in the served trends list
(the same review rule as /api/v1/trends/tags), from one read of the trends row per process and
TTL; the page itself stays one read of its own row."""
from __future__ import annotations

import datetime as dt

from hashtags import trends
from hashtags.settings import Settings
from serving import create_app
from tests.unit.serving_fakes import FakeStore, doc

UTC = dt.timezone.utc
MARK = '<a class="trending" href="/trends">Trending</a>'


def entry(tag: str, review: str = trends.PENDING) -> trends.TrendEntry:
    return trends.TrendEntry(tag, tag.capitalize(), 50.0, 40, 40, review)


def setup(clock, without_review: bool = True, *entries: trends.TrendEntry):
    store = FakeStore({k: doc(k, k.capitalize()) for k in ("love", "eclipse", "meteor")})
    store.trends = trends.TrendList(dt.datetime(2026, 12, 7, 23, tzinfo=UTC), entries)
    app = create_app(Settings(trends_without_review=without_review, trends_cache_seconds=10.0), store, clock=clock)
    return store, app.test_client()


def marked(client, tag: str) -> bool:
    r = client.get(f"/tags/{tag}")
    assert r.status_code == 200
    return r.get_data(as_text=True).count(MARK) == 1


def test_a_trending_tag_is_marked_and_others_are_not(clock):
    store, client = setup(clock, True, entry("eclipse"))
    assert (marked(client, "eclipse"), marked(client, "love")) == (True, False)
    assert store.reads == ["eclipse", "love"]  # each page: one read of its own row
    assert store.trends_reads == 1  # both pages: one read of the trends row


def test_the_mark_follows_the_review_setting_like_the_trends_api(clock):
    listed = (entry("eclipse", trends.PENDING), entry("meteor", trends.ALLOWED), entry("love", trends.REJECTED))
    for without_review, expected in ((True, (True, True, False)), (False, (False, True, False))):
        _, client = setup(clock, without_review, *listed)
        api = {t["name"].lower() for t in client.get("/api/v1/trends/tags").get_json()}
        assert (marked(client, "eclipse"), marked(client, "meteor"), marked(client, "love")) == expected
        assert api == {t for t, m in zip(("eclipse", "meteor", "love"), expected) if m}


def test_the_trends_read_is_reused_for_its_ttl_then_refreshed(clock):
    store, client = setup(clock, True, entry("eclipse"))
    assert marked(client, "eclipse")
    store.trends = trends.TrendList(None)  # the burst is over
    clock.now += 6  # the page body expired (5 s), the trends read has not (10 s)
    assert marked(client, "eclipse") and store.trends_reads == 1
    clock.now += 5
    assert not marked(client, "eclipse") and store.trends_reads == 2


def test_a_failed_trends_read_keeps_the_page_and_the_last_mark(clock):
    store, client = setup(clock, True, entry("eclipse"))
    assert marked(client, "eclipse")
    clock.now += 11
    store.trends_down = True
    assert marked(client, "eclipse")  # the last good set, not a 5xx
    assert store.trends_reads == 2


def test_a_stale_page_does_not_read_the_trends(clock):
    store, client = setup(clock, True, entry("eclipse"))
    assert marked(client, "eclipse")
    clock.now += 60
    store.down = True
    r = client.get("/tags/eclipse")
    assert r.status_code == 503 and MARK not in r.get_data(as_text=True)
    assert store.trends_reads == 1
