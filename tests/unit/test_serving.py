"""The web service above the store: status codes, headers, escaping, caching, size budget."""
from __future__ import annotations

import gzip
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from hashtags.layout import TopPost
from hashtags.settings import Settings
from serving import create_app
from serving.devimages import DEV_IMAGE_ORIGIN
from serving.views import EAGER_TILES
from tests.unit.serving_fakes import FakeStore, doc, realistic_posts


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


def test_singular_and_empty_state(fake_store, client):
    fake_store.docs["solo"] = doc("solo", "solo", total=1, posts=())
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
def test_non_canonical_spelling_redirects(client, fake_store, path, location):
    r = client.get(path)
    assert r.status_code == 301
    assert r.headers["Location"] == location
    assert "max-age" in r.headers["Cache-Control"]
    assert fake_store.reads == []  # decided before any read


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
    assert client.get("/tags/love/").status_code == 404
    assert client.get("/api/nope").get_json() == {"error": "not_found"}
    assert client.get("/nope").mimetype == "text/html"
    r = client.post("/tags/love")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert client.put("/api/tags/love").get_json() == {"error": "method_not_allowed"}


def test_top_posts_without_a_counted_post_is_the_unknown_tag_404(fake_store, client):
    """total_posts == 0 (the list arrived before the first counted post, or every counted post was
    deleted): the same 404 as a tag with no row, briefly cached, never "0 posts" above images."""
    fake_store.docs["zero"] = doc("zero", "zero", total=0)
    for path in ("/tags/zero", "/api/tags/zero"):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["Cache-Control"] == "public, max-age=10"
        assert b"img" not in r.data
    assert client.get("/api/tags/zero").get_json() == {"error": "not_found", "hashtag": "zero"}
    assert client.get("/api/tags/nothing").get_json() == {"error": "not_found", "hashtag": "nothing"}
    html = client.get("/tags/zero").get_data(as_text=True)
    assert "No posts with #zero yet." in html and "0 posts" not in html
    assert fake_store.reads == ["zero", "nothing"]  # the 404 is cached like an unknown tag's


@pytest.mark.parametrize("path, location", [
    ("//tags/love", "/tags/love"),
    ("/tags//love", "/tags/love"),
    ("///tags///love", "/tags/love"),
    ("//tags/Love", "/tags/love"),  # one hop straight to the canonical spelling
    ("//api//tags/#love", "/api/tags/love"),  # PATH_INFO is percent-decoded
    ("//tags/nothing", "/tags/nothing"),
    ("//tags/a b", "/tags/a%20b"),  # an invalid name: single slashes, then its own 404
    ("//healthz", "/healthz"),
    ("//evil.example/x", "/evil.example/x"),  # always a path, never //host
    ("//\\evil.example/x", "/%5Cevil.example/x"),  # "/\\host" is "//host" to a browser
    ("//tags/\x80\xff", "/tags/%80%FF"),  # bytes that are not UTF-8 (PATH_INFO is latin-1): kept as sent
])
def test_duplicate_slashes_redirect_to_the_canonical_path(client, fake_store, path, location):
    r = client.get("/", environ_overrides={"PATH_INFO": path})
    assert r.status_code == 301 and r.headers["Location"] == location
    assert r.headers["Cache-Control"] == "public, max-age=86400"
    assert fake_store.reads == []
    q = client.get("/", environ_overrides={"PATH_INFO": path, "QUERY_STRING": "utm=1"})
    assert q.headers["Location"] == location + "?utm=1"


@pytest.mark.parametrize("query, location", [
    ("x=%C3%A9", "/tags/love?x=%C3%A9"),  # escapes stay as sent
    ("x=\xc3\xa9", "/tags/love?x=%C3%A9"),  # raw UTF-8 bytes (PEP 3333: latin-1 text): encoded once
    ("a=1&b=/?c", "/tags/love?a=1&b=/?c"),
    ("x=\x80 y\"<", "/tags/love?x=%80%20y%22%3C"),
])
def test_duplicate_slash_redirect_keeps_the_query_as_sent(client, query, location):
    r = client.get("/", environ_overrides={"PATH_INFO": "//tags/love", "QUERY_STRING": query})
    assert (r.status_code, r.headers["Location"]) == (301, location)


def test_head_sends_the_headers_of_get_without_a_body(client):
    get, head = client.get("/tags/love"), client.head("/tags/love")
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.data))
    assert head.headers["ETag"] == get.headers["ETag"]
    assert client.head("/tags/nothing").status_code == 404 and client.head("/tags/nothing").data == b""


# ---- 503 -------------------------------------------------------------------------------------
def test_store_down_without_copy_is_503_with_retry_after(fake_store, client):
    fake_store.down = True
    r = client.get("/tags/love")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.headers["Cache-Control"] == "no-store"
    assert "Traceback" not in r.get_data(as_text=True)
    api = client.get("/api/tags/love")
    assert api.status_code == 503 and api.headers["Retry-After"] == "5" and api.get_json() == {"error": "unavailable"}


def test_store_down_serves_last_good_copy_marked_stale(fake_store, client, clock):
    assert client.get("/tags/love").status_code == 200
    client.get("/api/tags/love")
    clock.now += 60  # past the 5 s TTL: the next request re-reads, and the read fails
    fake_store.down = True
    r = client.get("/tags/love")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5" and r.headers["X-Cache"] == "stale"
    page = Tags(r.get_data(as_text=True))
    assert len(page.all("img")) == 100 and any("out of date" in t for t in page.text)
    api = client.get("/api/tags/love")
    assert api.status_code == 503 and api.get_json()["stale"] is True and api.get_json()["total_posts"] == 1_234_567
    fake_store.down = False
    assert client.get("/tags/love").status_code == 200


def test_readyz_and_healthz(fake_store, client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    fake_store.down = True
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"


# ---- headers ---------------------------------------------------------------------------------
SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def assert_security_headers(r) -> None:
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "img-src 'self' https:" in csp
    assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert {k: r.headers.get(k) for k in SECURITY} == SECURITY, r.status_code


def _broken_app(fake_store, clock):
    """The app with two routes that exist only here: one that crashes, one that reads the request
    body (so Werkzeug itself raises 413 past MAX_CONTENT_LENGTH), and a 400 from abort()."""
    from flask import abort, request

    app = create_app(Settings(breaker_failures=1), fake_store, clock=clock)
    app.add_url_rule("/crash", "crash", lambda: 1 / 0)
    app.add_url_rule("/body", "body", lambda: request.get_data(), methods=["POST"])
    app.add_url_rule("/bad", "bad", lambda: abort(400))
    return app


def test_one_error_body_and_one_header_step_for_every_route(fake_store, client):
    """Issue 21 "one way in": the trends routes answer a failed read with the tag routes' 503 (the
    HTML error page, or the JSON error under /api/), and every response gets the shared headers
    once, from the router's one step: CORS exactly under /api/."""
    fake_store.down = True
    down = {p: client.get(p) for p in ("/tags/gone", "/trends", "/api/tags/gone", "/api/v1/trends/tags")}
    for path, r in down.items():
        assert (r.status_code, r.headers["Retry-After"], r.headers["Cache-Control"]) == (503, "5", "no-store"), path
    assert down["/trends"].content_type == down["/tags/gone"].content_type == "text/html; charset=utf-8"
    assert down["/trends"].data == down["/tags/gone"].data and b"Temporarily unavailable" in down["/trends"].data
    assert down["/api/v1/trends/tags"].get_json() == down["/api/tags/gone"].get_json() == {"error": "unavailable"}
    fake_store.down = False
    paths = ("/tags/love", "/api/tags/love", "/api/v1/tags/love", "/trends", "/api/v1/trends/tags", "/readyz",
             "/healthz", "/api/openapi.json", "/static/site.css", "/nope", "/api/nope")
    for path in paths:
        r = client.get(path)
        assert r.headers.getlist("Access-Control-Allow-Origin") == (["*"] if path.startswith("/api/") else []), path
        for name in SECURITY:
            assert len(r.headers.getlist(name)) == 1, (path, name)
        assert_security_headers(r)


def test_security_headers_on_every_status_the_app_sends(fake_store, clock):
    fake_store.docs["zero"] = doc("zero", "zero", total=0)
    c = _broken_app(fake_store, clock).test_client()
    etag = c.get("/tags/love").headers["ETag"]
    cases = [
        (200, c.get("/tags/love")), (200, c.get("/api/tags/love")), (200, c.head("/tags/love")),
        (200, c.get("/healthz")), (200, c.get("/readyz")), (200, c.get("/static/site.css")),
        (301, c.get("/tags/Love")), (301, c.get("/api/tags/%23love")),
        (301, c.get("/", environ_overrides={"PATH_INFO": "//tags/love"})),
        (304, c.get("/tags/love", headers={"If-None-Match": etag})),
        (400, c.get("/bad")),
        (404, c.get("/tags/nothing")), (404, c.get("/api/tags/zero")), (404, c.get("/tags/%00")),
        (404, c.get("/nope")), (404, c.get("/api/nope")), (404, c.get("/static/nope.css")),
        (405, c.post("/tags/love")), (405, c.delete("/api/tags/love")), (405, c.post("/healthz")),
        (413, c.post("/body", data=b"x" * 2048)),
        (414, c.get("/tags/" + "a" * 9000)), (414, c.get("/healthz?" + "a" * 9000)),  # serving/views.py over_limit
        (431, c.get("/tags/love", headers={"X-Big": "a" * 40_000})),
        (500, c.get("/crash")),
    ]
    fake_store.down = True
    clock.now += 60
    cases += [(503, c.get("/tags/love")), (503, c.get("/api/tags/other")), (503, c.get("/readyz")),
              (503, c.get("/trends")), (503, c.get("/api/v1/trends/tags"))]
    fake_store.down = False
    fake_store.read_page = lambda key: 1 / 0  # a bug below the views: 500, not a traceback
    clock.now += 5  # past the breaker's cool-down: each read is a probe, and a bug is no verdict on the store
    cases += [(500, c.get("/tags/boom")), (500, c.get("/api/tags/boom"))]
    for status, r in cases:
        assert r.status_code == status, (status, r.status_code, r.request.path)
        assert_security_headers(r)
        assert b"Traceback" not in r.data and b"ZeroDivision" not in r.data
    assert c.get("/api/tags/boom").get_json() == {"error": "internal"}
    assert "Allow" in c.post("/tags/love").headers and c.post("/tags/love").headers["Allow"] == "GET, HEAD"


def test_csp_lists_only_configured_image_origins(fake_store):
    s = Settings.from_env({"HASHTAGS_IMAGE_ORIGINS": "https://img.example-cdn.com, https://i2.example.net"})
    h = create_app(s, fake_store).test_client().get("/tags/love").headers
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
def test_table_values_are_escaped_and_unsafe_urls_not_rendered(fake_store, client):
    fake_store.docs["xss"] = doc("xss", display='<img src=x onerror="alert(1)">"\'&', total=3, posts=[
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
_app_for_fuzz = create_app(Settings(), FakeStore({"love": doc()}))


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
def test_cache_hit_within_ttl_reread_after(fake_store, client, clock):
    assert client.get("/tags/love").headers["X-Cache"] == "miss"
    assert client.get("/tags/love").headers["X-Cache"] == "hit"
    assert client.get("/api/tags/love").headers["X-Cache"] == "hit"
    assert fake_store.reads == ["love"]
    clock.now += 4.9
    client.get("/tags/love")
    assert fake_store.reads == ["love"]
    clock.now += 0.2
    assert client.get("/tags/love").headers["X-Cache"] == "miss"
    assert fake_store.reads == ["love", "love"]


def test_unknown_tags_are_cached_too(fake_store, client, clock):
    client.get("/tags/nothing")
    client.get("/api/tags/nothing")
    assert fake_store.reads == ["nothing"]
    fake_store.docs["nothing"] = doc("nothing", "nothing", 2)
    clock.now += 6
    assert client.get("/tags/nothing").status_code == 200


def test_cache_is_bounded(fake_store, clock):
    for k in ("a", "b", "c"):
        fake_store.docs[k] = doc(k, k, 1)
    probe = create_app(Settings(), fake_store, clock=clock)
    probe.test_client().get("/tags/a")
    one = probe.services.cache.bytes  # one entry with its HTML body
    fake_store.reads.clear()
    app = create_app(Settings(page_cache_bytes=2 * one + one // 2), fake_store, clock=clock)
    c = app.test_client()
    for k in ("a", "b", "c", "a"):
        c.get(f"/tags/{k}")
    assert fake_store.reads == ["a", "b", "c", "a"]  # 'a' was evicted by 'c'
    assert len(app.services.cache) == 2


def test_zero_ttl_reads_every_time(fake_store, clock):
    c = create_app(Settings(cache_ttl_seconds=0), fake_store, clock=clock).test_client()
    c.get("/tags/love")
    c.get("/tags/love")
    assert fake_store.reads == ["love", "love"]


# ---- size budget -----------------------------------------------------------------------------
def test_html_for_100_posts_fits_the_budget(client):
    r = client.get("/tags/love")
    page = Tags(r.get_data(as_text=True))
    assert len(page.all("img")) == 100
    size, gz = len(r.data), len(gzip.compress(r.data, 6))
    assert size <= 25_000, size
    assert gz <= 6_000, gz


# ---- dev images ------------------------------------------------------------------------------
def test_dev_images_off_by_default(fake_store):
    fake_store.docs["dev"] = doc("dev", "dev", 1, posts=[TopPost("1", f"{DEV_IMAGE_ORIGIN}/dev-1.png")])
    c = create_app(Settings(), fake_store).test_client()
    assert Tags(c.get("/tags/dev").get_data(as_text=True)).all("img")[0]["src"] == f"{DEV_IMAGE_ORIGIN}/dev-1.png"
    assert c.get("/dev-images/dev-1.png").status_code == 404


def test_dev_images_rewritten_and_served(fake_store):
    fake_store.docs["dev"] = doc("dev", "dev", 2, posts=[TopPost("1", f"{DEV_IMAGE_ORIGIN}/dev-1.png"),
                                                     TopPost("2", "https://elsewhere.example/x.png")])
    c = create_app(Settings.from_env({"HASHTAGS_DEV_IMAGES": "1"}), fake_store).test_client()
    imgs = Tags(c.get("/tags/dev").get_data(as_text=True)).all("img")
    assert [a["src"] for a in imgs] == ["/dev-images/dev-1.png", "https://elsewhere.example/x.png"]
    r = c.get("/dev-images/dev-1.png")
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get("/dev-images/dev-1.png").data == r.data  # deterministic
    assert c.get("/dev-images/dev-2.png").data != r.data
    assert c.get("/dev-images/..%2Fetc.png").status_code == 404
    # the API returns the document as stored
    assert c.get("/api/tags/dev").get_json()["top_posts"][0]["image_url"] == f"{DEV_IMAGE_ORIGIN}/dev-1.png"




def test_image_urls_with_userinfo_are_not_rendered(fake_store, client):
    fake_store.docs["creds"] = doc("creds", "creds", 4, posts=[
        TopPost("1", "https://user:pass@img.example.com/a.jpg"),
        TopPost("2", "https://img.example.com@evil.test/b.jpg"),
        TopPost("3", "https://img.example.com/c@2x.jpg"),
        TopPost("4", "https://@img.example.com/d.jpg"),
    ])
    html = client.get("/tags/creds").get_data(as_text=True)
    assert [a["src"] for a in Tags(html).all("img")] == ["https://img.example.com/c@2x.jpg"]
    assert "pass@" not in html and "evil.test" not in html


# ---- one store read per request ---------------------------------------------------------------
@pytest.mark.parametrize("path", ["/tags/nothing", "/api/tags/nothing", "/tags/love", "/api/tags/love"])
def test_one_read_per_uncached_request(fake_store, clock, path):
    c = create_app(Settings(cache_ttl_seconds=0), fake_store, clock=clock).test_client()
    expected = 404 if "nothing" in path else 200
    assert c.get(path).status_code == expected
    assert c.get(path).status_code == expected
    assert len(fake_store.reads) == 2
    fake_store.down = True
    r = c.get(path)
    assert len(fake_store.reads) == 3
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"  # with the last good copy (love) or without


# ---- circuit breaker ------------------------------------------------------------------------
def test_breaker_answers_at_once_while_open_then_one_probe_recovers(fake_store, clock):
    app = create_app(Settings(breaker_failures=3, breaker_cool_down_seconds=10), fake_store, clock=clock)
    c = app.test_client()
    assert c.get("/tags/love").status_code == 200
    clock.now += 60  # the copy of love is expired: kept as the last good copy
    fake_store.down = True
    for path in ("/tags/love", "/api/tags/a", "/tags/b"):  # three failed reads in a row
        assert c.get(path).status_code == 503
    assert len(fake_store.reads) == 4 and app.services.breaker.state == "open"
    # open: every answer at once, no store read, no ping
    for _ in range(5):
        stale = c.get("/tags/love")
        assert stale.status_code == 503 and stale.headers["X-Cache"] == "stale" and b"out of date" in stale.data
        r = c.get("/api/tags/c")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5" and r.get_json() == {"error": "unavailable"}
    ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.get_data(as_text=True) == "store unavailable (open)\n"
    assert len(fake_store.reads) == 4 and fake_store.pings == 0
    assert app.services.breaker.rejected == 11
    # cool-down over, store still down: one probe read, open again
    clock.now += 10
    assert c.get("/tags/love").status_code == 503 and len(fake_store.reads) == 5
    assert c.get("/tags/love").status_code == 503 and len(fake_store.reads) == 5
    assert app.services.breaker.state == "open"
    # store back: the first request after the next cool-down is the probe and closes the circuit
    fake_store.down = False
    clock.now += 9.9
    assert c.get("/tags/love").status_code == 503 and len(fake_store.reads) == 5
    clock.now += 0.1
    r = c.get("/tags/love")
    assert r.status_code == 200 and r.headers["X-Cache"] == "miss" and app.services.breaker.state == "closed"
    assert c.get("/api/tags/a").status_code == 404 and c.get("/readyz").status_code == 200
    assert len(fake_store.reads) == 7 and fake_store.pings == 1


def test_readyz_ping_is_a_probe_too(fake_store, clock):
    app = create_app(Settings(breaker_failures=1, breaker_cool_down_seconds=5), fake_store, clock=clock)
    c = app.test_client()
    fake_store.down = True
    assert c.get("/readyz").get_data(as_text=True) == "store unavailable (open)\n"  # this ping opened it
    assert app.services.breaker.state == "open" and fake_store.pings == 1
    fake_store.down = False
    clock.now += 5
    assert app.services.breaker.state == "half-open"
    assert c.get("/readyz").status_code == 200 and app.services.breaker.state == "closed" and fake_store.pings == 2


def test_breaker_settings_from_env():
    s = Settings.from_env({"HASHTAGS_BREAKER_FAILURES": "2", "HASHTAGS_BREAKER_COOL_DOWN_SECONDS": "0.5"})
    assert (s.breaker_failures, s.breaker_cool_down_seconds) == (2, 0.5)
    b = create_app(s, FakeStore()).services.breaker
    assert (b.failures, b.cool_down) == (2, 0.5)


# ---- gzip negotiation ---------------------------------------------------------------------------
@pytest.mark.parametrize("header, ok", [
    (None, False), ("", False), ("gzip", True), ("br, gzip", True), ("gzip;q=0", False),
    ("gzip; q=0.5", True), ("*", True), ("*;q=0", False), ("identity", False), ("br;q=1, *;q=0.1", True),
    ("gzip;q=0, *", False), ("x-gzip", True), ("gzip;q=abc", False),
])
def test_accepts_gzip(header, ok):
    from serving.responses import accepts_gzip
    assert accepts_gzip(header) is ok


# ---- tiles: the plain-page speed-up gives the escaped builder's bytes ---------------------------
_url_chars = st.sampled_from(list("abcAB09.-_~%!$&()*+,;=:@/?#[]'\"<> \\\t\n\x00é") + ["https://", "http://", "HTTPS://"])
_ids = st.text(st.sampled_from(list("abZ09_.~-%&<>\"' /?#é")), min_size=1, max_size=12)
_plain_ids = st.text(st.sampled_from(list("aZ09_.~-")), min_size=1, max_size=20)
_plain_urls = st.builds(lambda host, path, query: f"https://{host}/{path}" + (f"?{query}" if query else ""),
                        st.sampled_from(["img.example-cdn.com", "a.b", "cdn.example.com:8443", "u:p@a.b"]),
                        st.text(st.sampled_from(list("abc09._~%!$&()*+,;=:@/-")), max_size=30),
                        st.text(st.sampled_from(list("abc09&=/?-")), max_size=10))
_any_urls = st.lists(_url_chars, max_size=20).map(lambda t: "https://img.example.com/" + "".join(t))
TEMPLATES = ["https://example.com/p/{post_id}", "/posts/{post_id}?from=tag&x='1'", "https://example.com/{post_id}/{{x}}"]


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(_plain_ids, _plain_urls), st.tuples(_ids, _any_urls)), max_size=30),
       st.sampled_from(TEMPLATES), st.booleans())
def test_tiles_equal_the_escaped_builder(posts, template, dev):
    """Mixed pages take the escaped builder; pages of plain URLs and ids the one-regex path."""
    from serving.views import _escaped_tiles, tiles_html

    d = doc(posts=[TopPost(pid, url) for pid, url in posts])
    assert tiles_html(d, template, dev) == _escaped_tiles(d, template, dev)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_plain_ids, _plain_urls), min_size=1, max_size=30), st.sampled_from(TEMPLATES))
def test_plain_page_path_equals_the_escaped_builder(posts, template):
    from serving.views import _escaped_tiles, _plain_tiles

    d = doc(posts=[TopPost(pid, url) for pid, url in posts])
    plain = _plain_tiles(d, template)
    if "@" not in "".join(u.split("/")[2] for _, u in posts) and "{{" not in template:
        assert plain is not None  # the path is taken: this test compares it, not the fallback
    assert (plain if plain is not None else _escaped_tiles(d, template, False)) == _escaped_tiles(d, template, False)


def test_path_is_decoded_as_pep3333_says(client):
    """PATH_INFO holds the path's bytes as latin-1 (granian and Werkzeug do so): UTF-8 names are
    decoded from it, invalid UTF-8 is a 404."""
    r = client.get("/tags/Caf%C3%A9")
    assert r.status_code == 301 and r.headers["Location"] == "/tags/caf%C3%A9"
    assert client.get("/", environ_overrides={"PATH_INFO": "/tags/caf\xc3\xa9"}).headers["X-Cache"] == "miss"
    assert client.get("/", environ_overrides={"PATH_INFO": "/tags/caf\xff"}).status_code == 404


def test_serving_modules_import_each_other_without_a_cycle():
    """Issue 21: the routes and the app factory import serving.services, not each other. Built from
    the modules' executed imports (``if TYPE_CHECKING:`` blocks are not run, so not counted)."""
    import ast
    from pathlib import Path

    import serving

    package = Path(serving.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        deps: set[str] = set()

        def visit(node: ast.AST) -> None:
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                return
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("serving."):
                deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.ImportFrom) and node.module == "serving":
                deps.update(a.name for a in node.names)
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(ast.parse(path.read_text()))
        graph[path.stem] = deps & {p.stem for p in package.glob("*.py")}
    assert graph["views"] and "services" in graph["app"] and "app" not in graph["views"]

    def cycle_from(start: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for dep in sorted(graph[start]):
            if dep in seen:
                return (*seen[seen.index(dep):], dep)
            found = cycle_from(dep, (*seen, dep))
            if found:
                return found
        return None

    assert [c for m in sorted(graph) if (c := cycle_from(m, (m,)))] == []
