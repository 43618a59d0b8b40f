"""serving.documents: related freshness, "counted up to", the JSON document, link-preview rules."""
from __future__ import annotations

import dataclasses
import datetime as dt

from hashtags.history import usage_history
from hashtags.layout import DayUse, Flags, HourUse, PageDocument, RelatedTag, TopPost
from hashtags.messages import is_https_url
from serving.documents import (RELATED_MAX_AGE, api_document, counted_up_to, day_points, description,
                               fresh_related, hour_points, page_meta, tag_url)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 10, 30, 45, tzinfo=UTC)
RUN = dt.datetime(2026, 11, 30, tzinfo=UTC)


def page(**kw) -> PageDocument:
    base = PageDocument(
        "love", "Love", 1_234_567,
        top_posts=(TopPost("a", "http://plain.example/a.jpg"), TopPost("b", "https://img.example/b.jpg?x=1&y=2")),
        updated_at=dt.datetime(2026, 12, 1, 10, tzinfo=UTC), base_as_of=RUN,
        hours=(HourUse(dt.datetime(2026, 11, 30, 23, tzinfo=UTC), 5), HourUse(dt.datetime(2026, 12, 1, 10, tzinfo=UTC), 7)),
        days=(DayUse(dt.date(2026, 11, 28), 40, 17), DayUse(dt.date(2026, 11, 29), 30, None)),
        related=(RelatedTag("heart", 120), RelatedTag("rose", 9), RelatedTag("valentine", 4), RelatedTag("kiss", 3)),
        related_as_of=RUN)
    return dataclasses.replace(base, **kw)


def test_related_shown_while_at_most_8_days_old():
    assert RELATED_MAX_AGE == dt.timedelta(days=8)
    edge = NOW - RELATED_MAX_AGE
    assert fresh_related(page(related_as_of=edge), NOW) == page().related
    assert fresh_related(page(related_as_of=edge - dt.timedelta(microseconds=1)), NOW) == ()
    assert fresh_related(page(related_as_of=None), NOW) == ()


def test_counted_up_to_the_end_of_the_newest_hour_capped_at_now():
    assert counted_up_to(page(), NOW) == dt.datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert counted_up_to(page(), dt.datetime(2026, 12, 1, 12, tzinfo=UTC)) == dt.datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert counted_up_to(page(hours=()), NOW) == RUN
    assert counted_up_to(page(hours=(), base_as_of=None), NOW) is None


def test_api_document():
    got = api_document(page(), NOW)
    assert list(got) == ["hashtag", "display_name", "total_posts", "updated_at", "sensitive", "history", "related",
                         "top_posts"]
    assert got["total_posts"] == 1_234_567 and got["updated_at"] == "2026-12-01T10:00:00.000Z"
    assert got["sensitive"] is False
    assert got["related"] == [{"tag": "heart", "posts": 120}, {"tag": "rose", "posts": 9},
                              {"tag": "valentine", "posts": 4}, {"tag": "kiss", "posts": 3}]
    assert got["top_posts"][1] == {"post_id": "b", "image_url": "https://img.example/b.jpg?x=1&y=2"}
    h = got["history"]
    assert h["as_of"] == "2026-11-30T00:00:00.000Z"
    assert h["days"][:4] == [
        {"day": "2026-12-01", "posts": 7, "accounts": None, "exact": False},
        {"day": "2026-11-30", "posts": 5, "accounts": None, "exact": False},
        {"day": "2026-11-29", "posts": 30, "accounts": None, "exact": True},
        {"day": "2026-11-28", "posts": 40, "accounts": 17, "exact": True}]
    assert [d["posts"] for d in h["days"][4:]] == [0, 0, 0] and len(h["days"]) == 7
    assert len(h["hours"]) == 24 and h["hours"][-1] == {"start": "2026-12-01T10:00:00.000Z", "posts": 7}
    assert h["hours"][-12] == {"start": "2026-11-30T23:00:00.000Z", "posts": 5}
    assert sum(x["posts"] for x in h["hours"]) == 12
    stale = api_document(page(related_as_of=RUN - dt.timedelta(days=9)), NOW)
    assert stale["related"] == []
    assert api_document(page(flags=Flags(sensitive=True)), NOW)["sensitive"] is True


def test_sparkline_points_read_left_to_right():
    h = usage_history(page(), NOW)
    days = day_points(h)
    assert [p.datetime for p in days] == [f"2026-11-{d}" for d in range(25, 31)] + ["2026-12-01"]
    assert [p.value for p in days] == [0, 0, 0, 40, 30, 5, 7]
    assert days[-1].label == "Today" and days[0].label == "Wed 25 Nov"
    assert [p.note for p in days] == [""] * 5 + ["provisional"] * 2
    hours = hour_points(h)
    assert hours[0].label == "11:00" and hours[0].datetime == "2026-11-30T11:00Z" and hours[-1].label == "10:00"


def test_description_names_the_count_the_week_and_three_related():
    h = usage_history(page(), NOW)
    assert description(page(), h, page().related) == (
        "#Love: 1,234,567 posts with #Love, all time; 82 in the last 7 days. Related: #heart, #rose, #valentine.")
    assert description(page(total_posts=1), h, ()) == "#Love: 1 post with #Love, all time; 82 in the last 7 days."


def test_link_preview_image_and_noindex():
    h = usage_history(page(), NOW)
    meta = page_meta(page(), h, (), public_url="https://hashtags.example/", noindex=False, renderable=is_https_url)
    assert meta.canonical == "https://hashtags.example/tags/love"
    assert meta.og_image == "https://img.example/b.jpg?x=1&y=2"  # the first https one (the first tile)
    assert meta.noindex is False
    assert page_meta(page(), h, (), public_url="https://h.example", noindex=True, renderable=is_https_url).noindex
    sensitive = page_meta(page(flags=Flags(sensitive=True)), h, (), public_url="https://h.example", noindex=False,
                          renderable=is_https_url)
    assert sensitive.noindex is True and sensitive.og_image is None
    none = page_meta(page(top_posts=(TopPost("a", "http://x.example/a.jpg"),)), h, (), public_url="https://h.example",
                     noindex=False, renderable=is_https_url)
    assert none.og_image is None


def test_tag_url_percent_encodes_the_key():
    assert tag_url("https://h.example", "ราตรี") == "https://h.example/tags/%E0%B8%A3%E0%B8%B2%E0%B8%95%E0%B8%A3%E0%B8%B5"
