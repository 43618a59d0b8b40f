"""The web service over the real BigtableStore and the Bigtable emulator."""
from __future__ import annotations

import datetime as dt

import pytest

from devstack.emulators import free_port
from hashtag_store import BigtableStore
from hashtags.layout import TopPost
from hashtags.messages import TopPostsUpdate
from hashtags.settings import Settings
from serving import create_app
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator
UTC = dt.timezone.utc


def posts(n: int, tag: str) -> tuple[TopPost, ...]:
    return tuple(TopPost(f"{tag}-{i:03d}", f"https://img.example-cdn.com/{tag}/{i:03d}.jpg") for i in range(n))


def test_api_and_page_over_the_real_store(store, table_name):
    day = dt.datetime(2026, 11, 22, tzinfo=UTC)
    store.write_base_counts([("love", 1_000_000)], as_of=day)
    store.write_hour_counts([
        ("love", day - dt.timedelta(hours=1), 999, "Love"),  # before the base: already inside it
        ("love", day + dt.timedelta(hours=3), 234_560, "Love"),
        ("love", day + dt.timedelta(hours=4), 7, "LOVE"),
    ])
    top = posts(100, "love")
    store.write_top_posts(TopPostsUpdate("love", day + dt.timedelta(hours=5), top))
    # an older list written afterwards (late delivery) does not replace the newer one
    store.write_top_posts(TopPostsUpdate("love", day + dt.timedelta(hours=1), posts(3, "old")))

    # the app builds its own BigtableStore from settings (lazily, as in a gunicorn worker)
    app = create_app(Settings(project=PROJECT, bigtable_instance=INSTANCE, table=table_name))
    c = app.test_client()
    r = c.get("/api/tags/love")
    assert r.status_code == 200
    body = r.get_json()
    assert body["hashtag"] == "love" and body["display_name"] == "LOVE"
    assert body["total_posts"] == 1_234_567
    assert body["top_posts"] == [{"post_id": p.post_id, "image_url": p.image_url} for p in top]
    assert body["updated_at"] == "2026-11-22T05:00:00.000Z"

    page = c.get("/tags/love")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["X-Cache"] == "hit"  # the API read filled the cache
    assert html.count("<img ") == 100 and 'title="1,234,567 posts"' in html and "1.2M posts" in html
    assert html.index("love/000.jpg") < html.index("love/001.jpg") < html.index("love/099.jpg")

    assert c.get("/api/tags/nothing").status_code == 404
    assert c.get("/tags/nothing").status_code == 404
    assert c.get("/tags/Love").headers["Location"] == "/tags/love"
    assert c.get("/readyz").status_code == 200


def test_one_row_read_per_uncached_request(store):
    store.write_hour_counts([("a", dt.datetime(2026, 11, 22, tzinfo=UTC), 5, "A")])
    reads = []
    real = store.read_page

    def counting(key):
        reads.append(key)
        return real(key)

    store.read_page = counting
    c = create_app(Settings(), store).test_client()
    for _ in range(5):
        assert c.get("/tags/a").status_code == 200
        assert c.get("/api/tags/a").get_json()["total_posts"] == 5
    assert reads == ["a"]


def test_store_unreachable_is_503_with_retry_after(bigtable_emulator, monkeypatch):
    # A BigtableStore pointed at a port where nothing listens: the emulator "stopped".
    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", f"localhost:{free_port()}")
    dead = BigtableStore(PROJECT, INSTANCE, "hashtags", read_timeout=1.0)
    try:
        c = create_app(Settings(retry_after_seconds=7), dead).test_client()
        r = c.get("/api/tags/love")
        assert r.status_code == 503 and r.headers["Retry-After"] == "7"
        assert r.get_json() == {"error": "unavailable"}
        page = c.get("/tags/love")
        assert page.status_code == 503 and page.headers["Retry-After"] == "7"
        assert "Traceback" not in page.get_data(as_text=True)
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200
    finally:
        dead.close()
