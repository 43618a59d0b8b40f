"""Page v2 through the app (Flask test client over the in-memory store): the three representations,
hidden = unknown, the sensitive cover, link previews, related freshness, escaping."""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re

import pytest

from hashtags.layout import DayUse, Flags, HourUse, RelatedTag, TopPost, hour_start
from hashtags.settings import Settings
from serving import create_app
from tests.unit.serving_fakes import FakeStore, doc

UTC = dt.timezone.utc
EVIL = '"><script>alert(1)</script>'


def with_history(d, now, related=(RelatedTag("heart", 120), RelatedTag("rose", 9)), related_age=dt.timedelta(days=1)):
    current = hour_start(now)
    today = now.date()
    midnight = dt.datetime.combine(today, dt.time(), UTC)
    return dataclasses.replace(
        d, hours=tuple(HourUse(current - dt.timedelta(hours=h), 2) for h in range(3)),
        days=tuple(DayUse(today - dt.timedelta(days=b), 10 * b, b) for b in range(2, 7)),
        base_as_of=midnight - dt.timedelta(days=1), related=related, related_as_of=midnight - related_age)


@pytest.fixture
def docs():
    now = dt.datetime.now(UTC)
    return {
        "love": with_history(doc("love", "Love", 1_234_567), now),
        "old": with_history(doc("old", "Old", 5), now, related_age=dt.timedelta(days=9)),
        "spicy": dataclasses.replace(with_history(doc("spicy", "Spicy", 9), now), flags=Flags(sensitive=True)),
        "gone": dataclasses.replace(with_history(doc("gone", "Gone", 9), now), flags=Flags(hidden=True)),
        "evil": with_history(doc("evil", EVIL, 3, [TopPost("1", "https://img.example/1.jpg")]), now,
                             related=(RelatedTag(EVIL, 4),)),
        "plain": with_history(doc("plain", "Plain", 3, [TopPost("1", "http://img.example/1.jpg"),
                                                        TopPost("2", "https://img.example/2.jpg?a=1&b=2")]), now),
    }


def client(docs, **settings):
    return create_app(Settings(public_url="https://hashtags.example", **settings), FakeStore(docs)).test_client()


def metas(page: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(r'<meta (?:name|property)="([^"]+)" content="([^"]*)">', page):
        out[m.group(1)] = html.unescape(m.group(2))
    return out


def test_link_preview_tags(docs):
    page = client(docs).get("/tags/plain").get_data(as_text=True)
    m = metas(page)
    assert '<link rel="canonical" href="https://hashtags.example/tags/plain">' in page
    assert m["og:url"] == "https://hashtags.example/tags/plain"
    assert m["og:title"] == "#Plain"
    assert m["description"] == m["og:description"]
    assert m["description"].startswith("#Plain: 3 posts with #Plain, all time; ")
    assert m["og:image"] == "https://img.example/2.jpg?a=1&b=2"  # the first https (rendered) one
    assert m["twitter:card"] == "summary_large_image" and m["og:type"] == "website"
    assert not any(k.startswith("twitter:") and k != "twitter:card" for k in m)  # X reads the og: tags
    assert "robots" not in m


def test_noindex_when_configured_and_for_sensitive_tags(docs):
    assert metas(client(docs, noindex=True).get("/tags/love").get_data(as_text=True))["robots"] == "noindex"
    page = client(docs).get("/tags/spicy").get_data(as_text=True)
    m = metas(page)
    assert m["robots"] == "noindex" and "og:image" not in m and m["twitter:card"] == "summary"
    # the tiles are inside a closed <details>: covered until the visitor opens it (no script)
    assert re.search(r'<details class="sensitive">\s*<summary>.*?</summary>\s*<ul class="g"', page, re.S)
    assert "<details class=\"sensitive\" open" not in page and "<script" not in page
    assert page.count("<img ") == 100


@pytest.mark.parametrize("prefix", ["/tags/", "/api/tags/", "/api/v1/tags/"])
def test_hidden_answers_exactly_as_unknown(docs, prefix):
    c = client(docs)
    hidden, unknown = c.get(prefix + "gone"), c.get(prefix + "nosuch")
    assert hidden.status_code == unknown.status_code == 404
    assert dict(hidden.headers) == dict(unknown.headers) | {"Content-Length": hidden.headers["Content-Length"]}
    assert hidden.get_data(as_text=True) == unknown.get_data(as_text=True).replace("nosuch", "gone")


def test_related_links_only_while_fresh_and_escaped(docs):
    c = client(docs)
    page = c.get("/tags/love").get_data(as_text=True)
    nav = re.search(r'<nav class="related" aria-label="Related tags">(.*?)</nav>', page, re.S).group(1)
    assert re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav) == [("/tags/heart", "#heart"), ("/tags/rose", "#rose")]
    assert page.index("</nav>") < page.index("</header>")
    assert 'class="related"' not in c.get("/tags/old").get_data(as_text=True)
    assert c.get("/api/tags/old").get_json()["related"] == []
    evil = c.get("/tags/evil").get_data(as_text=True)
    assert "<script" not in evil
    assert 'href="/tags/%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"' in evil
    assert "#&#34;&gt;&lt;script&gt;" in evil


def test_page_shows_what_the_total_counts_and_the_history(docs):
    page = client(docs).get("/tags/love").get_data(as_text=True)
    assert re.search(r'1\.2M posts</data> with <bdi lang="">#Love</bdi>, all time<span class="asof"> · counted up to '
                     r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\dZ">', page)
    assert '<h1><span dir="auto" lang="">#Love</span></h1>' in page
    assert page.count('<svg class="spark-svg" role="img"') == 2
    assert "<p>206 posts</p>" in page  # 10*(2..6) exact days + the 3 hour cells of today/yesterday (2 each)
    assert "<p>6 posts</p>" in page


def test_json_document(docs):
    body = client(docs).get("/api/tags/love").get_json()
    assert list(body) == ["hashtag", "display_name", "total_posts", "updated_at", "sensitive", "history", "related",
                          "top_posts"]
    assert body["total_posts"] == 1_234_567 and body["related"] == [{"tag": "heart", "posts": 120},
                                                                     {"tag": "rose", "posts": 9}]
    assert len(body["history"]["days"]) == 7 and len(body["history"]["hours"]) == 24
    assert [d["posts"] for d in body["history"]["days"]][2:] == [20, 30, 40, 50, 60]
    assert len(body["top_posts"]) == 100


def test_mastodon_entity(docs):
    r = client(docs).get("/api/v1/tags/love")
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.get_json()
    assert list(body) == ["name", "url", "history", "following"]
    assert body["name"] == "Love" and body["url"] == "https://hashtags.example/tags/love"
    assert [h["uses"] for h in body["history"]][2:] == ["20", "30", "40", "50", "60"]
    assert [h["accounts"] for h in body["history"]][2:] == ["2", "3", "4", "5", "6"]
    assert client(docs).get("/api/v1/tags/Love").headers["Location"] == "/api/v1/tags/love"


def test_the_apis_are_readable_from_any_origin_and_the_page_is_not(docs):
    c = client(docs)
    for path in ["/api/v1/tags/love", "/api/tags/love", "/api/tags/Love", "/api/v1/tags/nosuch", "/api/openapi.json"]:
        assert c.get(path).headers.get("Access-Control-Allow-Origin") == "*", path
    assert "Access-Control-Allow-Origin" not in c.get("/tags/love").headers
