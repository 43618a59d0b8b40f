"""The web service above the store: status codes, headers, escaping, caching, size budget."""
from __future__ import annotations

import gzip
import json
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from hashtags.layout import TopPost
from hashtags.settings import Settings
from serving import DEV_IMAGE_ORIGIN, create_app
from serving.views import EAGER_TILES
from tests.unit.serving_fakes import FakeStore, doc, realistic_posts


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Tags(HTMLParser):
    """Collects (tag, attrs) of every start tag, and the text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, name):
        return [a for t, a in self.tags if t == name]


@pytest.fixture
def store():
    return FakeStore({"love": doc()})


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(store, clock):
    return create_app(Settings(), store, clock=clock, dev_images=False)


@pytest.fixture
def client(app):
    return app.test_client()


# ---- 200 -------------------------------------------------------------------------------------
def test_page_shows_tag_count_and_100_tiles(client):
    r = client.get("/tags/love")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    page = Tags(r.get_data(as_text=True))
    assert [a for a in page.all("html")] == [{"lang": "en"}]
    assert len(page.all("h1")) == 1 and len(page.all("header")) == 1 and len(page.all("main")) == 1
    assert "#Love" in page.text
    assert page.all("data") == [{"value": "1234567", "title": "1,234,567 posts"}]
    assert "1.2M posts" in page.text
    imgs, links = page.all("img"), page.all("a")
    assert len(imgs) == 100 and len(links) == 100
    posts = realistic_posts()
    assert [a["href"] for a in links] == [f"https://example.com/p/{p.post_id}" for p in posts]
    assert [a["src"] for a in imgs] == [p.image_url for p in posts]
    assert all(a["width"] == "320" and a["height"] == "320" and a["alt"] for a in imgs)
    assert imgs[0].get("fetchpriority") == "high"
    assert [i for i, a in enumerate(imgs) if "loading" not in a] == list(range(EAGER_TILES))
    assert all(a["loading"] == "lazy" and a["decoding"] == "async" for a in imgs[EAGER_TILES:])


def test_api_returns_document(client):
    r = client.get("/api/tags/love")
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert body["hashtag"] == "love" and body["display_name"] == "Love" and body["total_posts"] == 1_234_567
    assert body["top_posts"][0] == {"post_id": realistic_posts()[0].post_id, "image_url": realistic_posts()[0].image_url}
    assert len(body["top_posts"]) == 100 and body["updated_at"] == "2026-11-23T10:00:00.000Z"


def test_singular_and_empty_state(store, client):
    store.docs["solo"] = doc("solo", "solo", total=1, posts=())
    r = client.get("/tags/solo")
    page = Tags(r.get_data(as_text=True))
    assert r.status_code == 200
    assert page.all("data") == [{"value": "1", "title": "1 post"}]
    assert "1 post" in page.text and "No top posts yet." in page.text and page.all("img") == []


# ---- 301 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, location", [
    ("/tags/Love", "/tags/love"),
    ("/tags/LOVE", "/tags/love"),
    ("/tags/%EF%BC%AC%EF%BD%8F%EF%BD%96%EF%BD%85", "/tags/love"),  # fullwidth ＬＯＶＥ
    ("/tags/%23love", "/tags/love"),
    ("/tags/%23Love", "/tags/love"),
    ("/tags/Caf%C3%A9", "/tags/caf%C3%A9"),
    ("/api/tags/Love", "/api/tags/love"),
    ("/api/tags/%23love", "/api/tags/love"),
])
def test_non_canonical_spelling_redirects(client, store, path, location):
    r = client.get(path)
    assert r.status_code == 301
    assert r.headers["Location"] == location
    assert "max-age" in r.headers["Cache-Control"]
    assert store.reads == []  # decided before any read


# ---- 304 -------------------------------------------------------------------------------------
def test_etag_and_304(client):
    r = client.get("/tags/love")
    etag = r.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith('W/')
    assert r.headers["Cache-Control"] == "public, max-age=30, stale-while-revalidate=300"
    again = client.get("/tags/love", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    other = client.get("/tags/love", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    api = client.get("/api/tags/love")
    assert api.headers["ETag"] != etag
    assert client.get("/api/tags/love", headers={"If-None-Match": api.headers["ETag"]}).status_code == 304


def test_gzip_variant_has_its_own_etag(client):
    plain = client.get("/tags/love")
    gz = client.get("/tags/love", headers={"Accept-Encoding": "gzip, br"})
    assert gz.headers["Content-Encoding"] == "gzip" and gz.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(gz.data) == plain.data
    assert gz.headers["ETag"] != plain.headers["ETag"]
    assert client.get("/tags/love", headers={"Accept-Encoding": "gzip;q=0"}).headers.get("Content-Encoding") is None
    r = client.get("/tags/love", headers={"Accept-Encoding": "gzip", "If-None-Match": gz.headers["ETag"]})
    assert r.status_code == 304


# ---- 404 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "nothing",  # valid, but no row
    "%3Cscript%3E",  # <script>
    "a" * 101,  # over MAX_TAG_LENGTH
    "x%00y", "x%0Ay", "x%7Fy",  # control characters
    "%23", "%23%23love", "123", "_", "a-b", "a%20b", "%ED%A0%80",  # lone surrogate bytes
])
def test_unknown_or_invalid_names_are_404(client, name):
    r = client.get("/tags/" + name)
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "<script>" not in r.get_data(as_text=True)
    api = client.get("/api/tags/" + name)
    assert api.status_code == 404 and api.mimetype == "application/json"
    assert api.get_json()["error"] == "not_found"


def test_unknown_routes_404(client):
    assert client.get("/tags/").status_code == 404
    assert client.get("/tags/a/b").status_code == 404
    assert client.get("/api/nope").get_json() == {"error": "not_found"}
    assert client.post("/tags/love").status_code == 405


# ---- 503 -------------------------------------------------------------------------------------
def test_store_down_without_copy_is_503_with_retry_after(store, client):
    store.down = True
    r = client.get("/tags/love")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.headers["Cache-Control"] == "no-store"
    assert "Traceback" not in r.get_data(as_text=True)
    api = client.get("/api/tags/love")
    assert api.status_code == 503 and api.headers["Retry-After"] == "5" and api.get_json() == {"error": "unavailable"}


def test_store_down_serves_last_good_copy_marked_stale(store, client, clock):
    assert client.get("/tags/love").status_code == 200
    client.get("/api/tags/love")
    clock.now += 60  # past the 5 s TTL: the next request re-reads, and the read fails
    store.down = True
    r = client.get("/tags/love")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5" and r.headers["X-Cache"] == "stale"
    page = Tags(r.get_data(as_text=True))
    assert len(page.all("img")) == 100 and any("out of date" in t for t in page.text)
    api = client.get("/api/tags/love")
    assert api.status_code == 503 and api.get_json()["stale"] is True and api.get_json()["total_posts"] == 1_234_567
    store.down = False
    assert client.get("/tags/love").status_code == 200


def test_readyz_and_healthz(store, client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    store.down = True
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"


# ---- headers ---------------------------------------------------------------------------------
def test_security_headers_everywhere(client):
    for path in ("/tags/love", "/api/tags/love", "/tags/nothing", "/healthz", "/static/site.css"):
        h = client.get(path).headers
        csp = h["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "img-src 'self' https:" in csp
        assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_csp_lists_only_configured_image_origins(store):
    s = Settings.from_env({"HASHTAGS_IMAGE_ORIGINS": "https://img.example-cdn.com, https://i2.example.net"})
    h = create_app(s, store, dev_images=False).test_client().get("/tags/love").headers
    assert "img-src 'self' https://img.example-cdn.com https://i2.example.net;" in h["Content-Security-Policy"]


def test_static_css_is_versioned_and_long_cached(client):
    html = client.get("/tags/love").get_data(as_text=True)
    href = Tags(html).all("link")[0]["href"]
    assert href.startswith("/static/site.css?v=")
    r = client.get(href)
    assert r.status_code == 200 and r.mimetype == "text/css"
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "style=" not in html and "<script" not in html and "<style" not in html


# ---- escaping --------------------------------------------------------------------------------
def test_table_values_are_escaped_and_unsafe_urls_not_rendered(store, client):
    store.docs["xss"] = doc("xss", display='<img src=x onerror="alert(1)">"\'&', total=3, posts=[
        TopPost("1", "javascript:alert(1)"),
        TopPost("2", "http://img.example.com/plain-http.jpg"),
        TopPost("3", "data:image/png;base64,AAAA"),
        TopPost('4"><script>alert(1)</script>', "https://img.example.com/ok.jpg"),
        TopPost("5", 'https://img.example.com/a.jpg" onerror="alert(1)'),
        TopPost("6", "HTTPS://img.example.com/upper.jpg"),
    ])
    r = client.get("/tags/xss")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "<img src=x" not in html and "<script>" not in html and "onerror=" not in html.replace("onerror=&#34;", "")
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&#34;&#39;&amp;" in html
    page = Tags(html)
    assert page.all("h1") == [{}] and '#<img src=x onerror="alert(1)">"\'&' in page.text
    imgs = page.all("img")
    assert [a["src"] for a in imgs] == ["https://img.example.com/ok.jpg", "HTTPS://img.example.com/upper.jpg"]
    assert [a["href"] for a in page.all("a")] == ["https://example.com/p/4%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E",
                                                  "https://example.com/p/6"]
    assert "javascript:" not in html and "http://img" not in html and "data:image" not in html


# ---- never a 5xx -----------------------------------------------------------------------------
_app_for_fuzz = create_app(Settings(), FakeStore({"love": doc()}), dev_images=False)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=0, max_size=120))
def test_arbitrary_names_never_5xx(name):
    c = _app_for_fuzz.test_client()
    for prefix in ("/tags/", "/api/tags/"):
        r = c.get(prefix + quote(name, safe=""))
        assert r.status_code in (200, 301, 404), (name, r.status_code)
        if r.status_code == 301:
            follow = c.get(r.headers["Location"])
            assert follow.status_code in (200, 404), (name, r.headers["Location"])
            assert follow.status_code != 301


@hsettings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=60))
def test_arbitrary_path_bytes_never_5xx(raw):
    c = _app_for_fuzz.test_client()
    r = c.get("/tags/" + quote(raw, safe=""))
    assert r.status_code in (200, 301, 404)


# ---- cache -----------------------------------------------------------------------------------
def test_cache_hit_within_ttl_reread_after(store, client, clock):
    assert client.get("/tags/love").headers["X-Cache"] == "miss"
    assert client.get("/tags/love").headers["X-Cache"] == "hit"
    assert client.get("/api/tags/love").headers["X-Cache"] == "hit"
    assert store.reads == ["love"]
    clock.now += 4.9
    client.get("/tags/love")
    assert store.reads == ["love"]
    clock.now += 0.2
    assert client.get("/tags/love").headers["X-Cache"] == "miss"
    assert store.reads == ["love", "love"]


def test_unknown_tags_are_cached_too(store, client, clock):
    client.get("/tags/nothing")
    client.get("/api/tags/nothing")
    assert store.reads == ["nothing"]
    store.docs["nothing"] = doc("nothing", "nothing", 2)
    clock.now += 6
    assert client.get("/tags/nothing").status_code == 200


def test_cache_is_bounded(store, clock):
    for k in ("a", "b", "c"):
        store.docs[k] = doc(k, k, 1)
    app = create_app(Settings(cache_max_entries=2), store, clock=clock, dev_images=False)
    c = app.test_client()
    for k in ("a", "b", "c", "a"):
        c.get(f"/tags/{k}")
    assert store.reads == ["a", "b", "c", "a"]  # 'a' was evicted by 'c'
    assert len(app.extensions["hashtags"]["cache"]) == 2


def test_zero_ttl_reads_every_time(store, clock):
    c = create_app(Settings(cache_ttl_seconds=0), store, clock=clock, dev_images=False).test_client()
    c.get("/tags/love")
    c.get("/tags/love")
    assert store.reads == ["love", "love"]


# ---- size budget -----------------------------------------------------------------------------
def test_html_for_100_posts_fits_the_budget(client):
    r = client.get("/tags/love")
    page = Tags(r.get_data(as_text=True))
    assert len(page.all("img")) == 100
    size, gz = len(r.data), len(gzip.compress(r.data, 6))
    assert size <= 25_000, size
    assert gz <= 6_000, gz


# ---- dev images ------------------------------------------------------------------------------
def test_dev_images_off_by_default(store):
    store.docs["dev"] = doc("dev", "dev", 1, posts=[TopPost("1", f"{DEV_IMAGE_ORIGIN}/dev-1.png")])
    c = create_app(Settings(), store, dev_images=False).test_client()
    assert Tags(c.get("/tags/dev").get_data(as_text=True)).all("img")[0]["src"] == f"{DEV_IMAGE_ORIGIN}/dev-1.png"
    assert c.get("/dev-images/dev-1.png").status_code == 404


def test_dev_images_rewritten_and_served(store, monkeypatch):
    store.docs["dev"] = doc("dev", "dev", 2, posts=[TopPost("1", f"{DEV_IMAGE_ORIGIN}/dev-1.png"),
                                                     TopPost("2", "https://elsewhere.example/x.png")])
    monkeypatch.setenv("HASHTAGS_DEV_IMAGES", "1")
    c = create_app(Settings(), store).test_client()
    imgs = Tags(c.get("/tags/dev").get_data(as_text=True)).all("img")
    assert [a["src"] for a in imgs] == ["/dev-images/dev-1.png", "https://elsewhere.example/x.png"]
    r = c.get("/dev-images/dev-1.png")
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get("/dev-images/dev-1.png").data == r.data  # deterministic
    assert c.get("/dev-images/dev-2.png").data != r.data
    assert c.get("/dev-images/..%2Fetc.png").status_code == 404
    # the API returns the document as stored
    assert c.get("/api/tags/dev").get_json()["top_posts"][0]["image_url"] == f"{DEV_IMAGE_ORIGIN}/dev-1.png"


# ---- fast path -------------------------------------------------------------------------------
def _headers(r):
    return {k: v for k, v in r.headers.items() if k != "X-Cache"}


@pytest.mark.parametrize("path", ["/tags/love", "/api/tags/love"])
@pytest.mark.parametrize("extra", [{}, {"Accept-Encoding": "gzip"}])
def test_fast_path_sends_the_same_response_as_flask(client, app, store, path, extra):
    from werkzeug.test import Client

    flask_only = Client(app.wsgi_app.wsgi_app, app.response_class)  # the Flask app without the fast path
    via_flask = flask_only.get(path, headers=extra)  # miss: Flask reads, renders, fills the cache
    app.extensions["hashtags"]["cache"].clear()
    first = client.get(path, headers=extra)  # miss: the fast path reads and renders
    hit = client.get(path, headers=extra)  # hit: the fast path sends the cached bytes
    assert (via_flask.headers["X-Cache"], first.headers["X-Cache"], hit.headers["X-Cache"]) == ("miss", "miss", "hit")
    assert via_flask.status_code == first.status_code == hit.status_code == 200
    assert via_flask.data == first.data == hit.data
    assert _headers(via_flask) == _headers(first) == _headers(hit)
    assert store.reads == ["love", "love"]
    nm_fast = client.get(path, headers={**extra, "If-None-Match": first.headers["ETag"]})
    assert nm_fast.status_code == 304 and nm_fast.headers["X-Cache"] == "hit"
    nm_flask = flask_only.get(path, headers={**extra, "If-None-Match": "W/" + first.headers["ETag"]})
    assert nm_flask.status_code == 304 and _headers(nm_flask) == _headers(nm_fast)
    # a fresh entry whose other representation is not rendered yet: rendered on the fast path
    app.extensions["hashtags"]["cache"].clear()
    other = "/api/tags/love" if path == "/tags/love" else "/tags/love"
    client.get(other)
    r = client.get(path, headers=extra)
    assert r.headers["X-Cache"] == "hit" and r.data == first.data and store.reads == ["love"] * 3


@pytest.mark.parametrize("path", ["/tags/nothing", "/api/tags/nothing", "/tags/love", "/api/tags/love"])
def test_one_read_per_request_when_flask_answers_after_the_fast_path(store, clock, path):
    """Unknown tags (404) and outages (503) are answered by Flask after the fast path has looked the
    tag up: it hands its result over instead of reading again."""
    c = create_app(Settings(cache_ttl_seconds=0), store, clock=clock, dev_images=False).test_client()
    expected = 404 if "nothing" in path else 200
    assert c.get(path).status_code == expected
    assert c.get(path).status_code == expected
    assert len(store.reads) == 2
    store.down = True
    r = c.get(path)
    assert len(store.reads) == 3
    assert r.status_code == 503  # with the last good copy (known tag) or without (unknown)
    assert r.headers["Retry-After"]


def test_fast_path_ignores_what_it_does_not_own(client, store):
    client.get("/tags/love")
    assert client.head("/tags/love").status_code == 200  # HEAD goes through Flask
    assert client.get("/tags/love/x").status_code == 404
    assert client.get("/tags/Love").status_code == 301
    store.docs.pop("love")
    assert client.get("/tags/love").status_code == 200  # still fresh in the cache


@pytest.mark.parametrize("header, ok", [
    (None, False), ("", False), ("gzip", True), ("br, gzip", True), ("gzip;q=0", False),
    ("gzip; q=0.5", True), ("*", True), ("*;q=0", False), ("identity", False), ("br;q=1, *;q=0.1", True),
    ("gzip;q=0, *", False), ("x-gzip", True), ("gzip;q=abc", False),
])
def test_accepts_gzip(header, ok):
    from serving.responses import accepts_gzip
    assert accepts_gzip(header) is ok


_url_chars = st.sampled_from(list("abcAB09.-_~%!$&()*+,;=:@/?#[]'\"<> \\\t\n\x00é") + ["https://", "http://", "HTTPS://"])


@hsettings(max_examples=500, deadline=None)
@given(st.lists(_url_chars, max_size=30).map("".join))
def test_fast_url_check_never_accepts_what_the_domain_rejects(tail):
    from hashtags.messages import is_https_url
    from serving.views import _PLAIN_HTTPS, renderable_image

    for url in ("https://" + tail, tail):
        assert renderable_image(url) == is_https_url(url)
        if _PLAIN_HTTPS.fullmatch(url):
            assert is_https_url(url), url


_ids = st.text(st.sampled_from(list("abZ09_.~-%&<>\"' /?#é")), min_size=1, max_size=12)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ids, st.lists(_url_chars, max_size=20).map(lambda t: "https://img.example.com/" + "".join(t))),
                max_size=20),
       st.sampled_from(["https://example.com/p/{post_id}", "/posts/{post_id}?from=tag&x='1'",
                        "https://example.com/{post_id}/{{x}}"]),
       st.booleans())
def test_fast_tiles_equal_reference(posts, template, dev):
    from serving.views import tiles_html, tiles_html_reference

    d = doc(posts=[TopPost(pid, url) for pid, url in posts])
    assert tiles_html(d, template, dev) == tiles_html_reference(d, template, dev)


_plain_urls = st.builds(lambda host, path, query: f"https://{host}/{path}" + (f"?{query}" if query else ""),
                        st.sampled_from(["img.example-cdn.com", "a.b", "cdn.example.com:8443"]),
                        st.text(st.sampled_from(list("abc09._~%!$&()*+,;=:@/-")), max_size=30),
                        st.text(st.sampled_from(list("abc09&=/?-")), max_size=10))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(st.sampled_from(list("aZ09_.~-")), min_size=1, max_size=20), _plain_urls),
                min_size=1, max_size=30),
       st.sampled_from(["https://example.com/p/{post_id}", "/posts/{post_id}?from=tag&x='1'"]))
def test_whole_page_tile_path_equals_reference(posts, template):
    """Pages whose every URL and id is plain take the one-regex path: same bytes as the reference."""
    from serving.views import tiles_html, tiles_html_reference

    d = doc(posts=[TopPost(pid, url) for pid, url in posts])
    assert tiles_html(d, template, False) == tiles_html_reference(d, template, False)
    assert tiles_html(d, template, True) == tiles_html_reference(d, template, True)
