"""hashtags.messages validation rules of issue 8: encodable strings, clean ids, bounded times,
attributes that agree with the body, a bounded number of counted tags."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from hashtags import settings
from hashtags.messages import (Bounds, PostEvent, Rejected, TopPostsUpdate, parse_post_event,
                               parse_post_event_fields, parse_top_posts)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def event(**over) -> dict:
    d = {"event": "published", "post_id": "p1", "user_id": "u1", "caption": "#a #B",
         "image_url": "https://img.example/1.jpg", "event_time": "2026-11-23T10:00:00Z", "event_id": "e1"}
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def top(**over) -> dict:
    d = {"hashtag": "love", "computed_at": "2026-11-23T10:00:00Z",
         "posts": [{"post_id": "p1", "image_url": "https://img.example/1.jpg"}]}
    d.update(over)
    return d


def parse(body: dict, attributes=None, **kw):
    return parse_post_event(json.dumps(body).encode(), attributes, **kw)


def reason(result) -> str:
    assert isinstance(result, Rejected), result
    return result.reason


# ---- strings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["caption", "post_id", "user_id", "event_id", "image_url"])
def test_a_lone_surrogate_in_any_string_field_is_rejected(field):
    value = "x\ud800y" if field != "image_url" else "https://img.example/\ud800.jpg"
    body = json.dumps(event(**{field: value}))  # ASCII JSON: the escape "\ud800", as a publisher sends it
    assert "\\ud800" in body
    r = reason(parse_post_event(body.encode()))
    assert field in r and ("surrogate" in r or "https URL" in r)


def test_a_lone_surrogate_in_a_deletes_fields_is_rejected():
    assert "surrogate" in reason(parse(event(event="deleted", caption=None, hashtags=["#ok", "#x\udc00"])))
    assert "surrogate" in reason(parse(event(event="deleted", image_url="\udfff")))
    assert "surrogate" in reason(parse(event(event="deleted", caption="#a \ud83d")))


def test_a_valid_surrogate_pair_escape_is_a_normal_character():
    e = parse_post_event(b'{"event":"published","post_id":"p","user_id":"u","caption":"#a \\ud83d\\ude00",'
                         b'"image_url":"https://i.example/x","event_time":"2026-11-23T10:00:00Z"}')
    assert isinstance(e, PostEvent) and e.caption == "#a \U0001F600"


@pytest.mark.parametrize("bad", ["\x00", "\x1f", "\n", "\x7f", "\x85", "a\tb"])
@pytest.mark.parametrize("field", ["post_id", "user_id", "event_id"])
def test_control_characters_in_ids_are_rejected(field, bad):
    assert "control character" in reason(parse(event(**{field: "id" + bad})))


def test_ids_may_be_any_printable_text_and_captions_may_hold_newlines():
    e = parse(event(post_id="ｐｏｓｔ-1 é", user_id="user 1", event_id="ε-1", caption="line 1\nline 2 #a\x00"))
    assert isinstance(e, PostEvent) and e.post_id == "ｐｏｓｔ-1 é" and e.tags() == [("a", "a")]


@pytest.mark.parametrize("url", ["https://img.example/a\x00.jpg", "https://img.example/\x7f", "https://\x01x/y",
                                 "https://img.example/é\ud800"])
def test_image_urls_with_controls_or_surrogates_are_rejected(url):
    assert "https URL" in reason(parse(event(image_url=url)))
    assert "https URL" in reason(parse_top_posts(json.dumps(top(posts=[{"post_id": "p", "image_url": url}]))))


def test_top_posts_ids_and_hashtag_with_surrogates_or_controls_are_rejected():
    r = reason(parse_top_posts(json.dumps(top(posts=[{"post_id": "\ud800", "image_url": "https://i.example/1"}]))))
    assert r.startswith("posts[0]: field 'post_id' holds a control character or a lone surrogate")
    assert "control character" in reason(parse_top_posts(json.dumps(top(posts=[
        {"post_id": "a\x00", "image_url": "https://i.example/1"}]))))
    assert "valid hashtag" in reason(parse_top_posts(json.dumps(top(hashtag="lo\ud800ve"))))


# ---- times -----------------------------------------------------------------------------------
@pytest.mark.parametrize("t", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                               "1999-12-31T23:59:59.999999Z"])
def test_times_before_the_floor_are_rejected_with_or_without_now(t):
    for now in (None, NOW):
        assert "before the floor" in reason(parse(event(event_time=t), now=now))
        assert "before the floor" in reason(parse_top_posts(json.dumps(top(computed_at=t)), now=now))


@pytest.mark.parametrize("t", ["2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-23T12:05:00.001Z"])
def test_times_beyond_the_skew_after_now_are_rejected(t):
    assert "in the future" in reason(parse(event(event_time=t), now=NOW))
    assert "in the future" in reason(parse_top_posts(json.dumps(top(computed_at=t)), now=NOW))
    # now=None (the recount re-reading its archive) skips the future check
    assert isinstance(parse(event(event_time=t)), PostEvent)
    assert isinstance(parse_top_posts(json.dumps(top(computed_at=t))), TopPostsUpdate)


def test_the_bounds_are_inclusive_and_configurable():
    assert isinstance(parse(event(event_time="2026-11-23T12:05:00Z"), now=NOW), PostEvent)  # now + 5 min exactly
    assert isinstance(parse(event(event_time="2000-01-01T00:00:00Z"), now=NOW), PostEvent)  # the floor itself
    tight = Bounds(floor=dt.datetime(2026, 11, 23, tzinfo=UTC), max_future_skew=dt.timedelta(0))
    assert "in the future" in reason(parse(event(event_time="2026-11-23T12:00:01Z"), now=NOW, bounds=tight))
    assert "before the floor" in reason(parse(event(event_time="2026-11-22T23:59:59Z"), now=NOW, bounds=tight))
    assert settings.MAX_FUTURE_SKEW == dt.timedelta(minutes=5)


@pytest.mark.parametrize("t", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_offsets_past_the_datetime_range_are_rejected_not_raised(t):
    assert "not an RFC 3339 timestamp" in reason(parse(event(event_time=t)))
    assert "not an RFC 3339 timestamp" in reason(parse_top_posts(json.dumps(top(computed_at=t))))


# ---- attributes ------------------------------------------------------------------------------
def test_attribute_and_body_event_time_must_be_the_same_instant_to_the_millisecond():
    body = event(event_time="2026-11-23T10:00:00.123456Z")
    for same in ("2026-11-23T10:00:00.123Z", "2026-11-23T11:00:00.123+01:00", "1795428000123"):
        e = parse(body, {"event_time": same, "event_id": "e1"}, require_attributes=True)
        assert isinstance(e, PostEvent), same
        assert e.event_time == dt.datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)  # the body's
    assert "different instants" in reason(parse(body, {"event_time": "2026-11-23T10:00:00.124Z"}))
    assert "different instants" in reason(parse(body, {"event_time": "1795428000124"}))
    assert "not an RFC 3339 timestamp or epoch milliseconds" in reason(parse(body, {"event_time": "soon"}))


def test_attribute_and_body_event_id_must_be_equal():
    assert "differs from field 'event_id'" in reason(parse(event(event_id="e1"), {"event_id": "e2"}))
    assert parse(event(event_id="e1"), {"event_id": "e1"}).event_id == "e1"


def test_an_attribute_stands_in_for_a_missing_body_field():
    e = parse(event(event_time=None, event_id=None), {"event_time": "2026-11-23T10:00:00Z", "event_id": "a1"})
    assert e.event_time == dt.datetime(2026, 11, 23, 10, tzinfo=UTC) and e.event_id == "a1"
    assert "before the floor" in reason(parse(event(event_time=None), {"event_time": "0"}))
    assert "control character" in reason(parse(event(event_id=None), {"event_id": "a\x00"}))


def test_require_attributes_rejects_a_missing_attribute():
    assert reason(parse(event(), {"event_id": "e1"}, require_attributes=True)).startswith(
        "missing attribute 'event_time'")
    assert reason(parse(event(), {"event_time": "2026-11-23T10:00:00Z"}, require_attributes=True)).startswith(
        "missing attribute 'event_id'")
    assert reason(parse(event(), None, require_attributes=True)).startswith("missing attribute 'event_time'")
    assert isinstance(parse(event(), None), PostEvent)  # the local path: the body is enough


def test_attributes_of_the_wrong_type_are_rejected():
    assert "attribute 'event_time' must be a string" in reason(parse(event(), {"event_time": 5}))
    assert "attributes must be a map" in reason(parse(event(), ["event_time"]))


# ---- the tag cap -----------------------------------------------------------------------------
N = settings.MAX_TAGS_PER_POST


def test_a_caption_with_1200_tags_counts_the_first_n_distinct():
    caption = " ".join(f"#t{i} #T{i}" for i in range(1200))
    e = parse(event(caption=caption))
    assert [k for k, _ in e.tags()] == [f"t{i}" for i in range(N)]


def test_a_delete_list_of_1000_entries_takes_back_exactly_what_the_publish_counted():
    tags = [f"#t{i}" for i in range(1000)]
    published = parse(event(caption=" ".join(["#t0", "#123", "#T0"] + tags)))
    deleted = parse(event(event="deleted", caption=None, hashtags=["t0", "123", "#T0", "x" * 101] + tags[:996]))
    assert [k for k, _ in deleted.tags()] == [k for k, _ in published.tags()]
    assert len(deleted.hashtags) == 1000 and len(deleted.tags()) == N
    assert "more than 1000 entries" in reason(parse(event(event="deleted", caption=None, hashtags=tags + ["#z"])))


def test_fields_tuple_is_named_and_equal_to_the_event():
    fields = parse_post_event_fields(json.dumps(event()))
    assert fields.post_id == fields[1] == "p1" and fields.event_time == fields[5]
    assert type(parse_post_event_fields(json.dumps(event(event_time="1969-01-01T00:00:00Z")))) is Rejected
