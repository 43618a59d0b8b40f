"""The fast paths of hashtags.messages (added for the recount's throughput) give exactly the answers
of the plain code they short-cut: the https check against urlsplit, the ASCII payload shortcut
against the encode/decode round trip, the field tuple against the PostEvent."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from hypothesis import example, given, settings as hsettings, strategies as st

from hashtags import settings
from hashtags.messages import (POST_EVENT_FIELDS, PostEvent, Rejected, is_https_url, parse_post_event,
                               parse_post_event_fields, post_event_from_fields)


def reference_https(value) -> bool:
    """The check before the fast path, verbatim, plus the issue-8 rule: no C0 control, DEL or lone
    surrogate anywhere (a surrogate cannot be encoded into the top-posts cell), and the issue-12 rule:
    no userinfo (``user:pass@``) in the netloc."""
    if not isinstance(value, str) or not value or len(value) > settings.MAX_URL_LENGTH:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return (parts.scheme == "https" and bool(parts.netloc) and "@" not in parts.netloc and not any(c in value for c in "\"'<> \t\r\n\\")
            and not any(c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff" for c in value))


PIECES = ["https://", "HTTPS://", "http://", "https:", "//", "/", "?", "#", "[", "]", "[::1]", "@", ":", "%",
          "a", "img.example", "x.jpg", " ", "\t", "\n", "\r", "\\", "'", '"', "<", ">", "é", "ℂ", "\u2100",
          "\x00", "\x1f", "\x7f", "\ud800", "\udfff", "-", ".", "~"]


@hsettings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
@example("https://img.example/1.jpg")
@example("https://")
@example("https:///path")
@example("https://?q")
@example("https://[::1]/x")
@example("https://[::1/x")
@example("https://a]/x")
@example("https://a/[x]")
@example("https://a b")
@example(" https://a/b")
@example("https://a/b\n")
@example("https://é.example/x")
@example("https://a\u2100b/x")
@example("https://user:pass@img.example/x.jpg")
@example("https://img.example/a@b.jpg")
def test_https_fast_path_equals_urlsplit(value):
    assert is_https_url(value) == reference_https(value)


@given(st.text(max_size=60))
def test_https_on_any_text(value):
    assert is_https_url("https://" + value) == reference_https("https://" + value)
    assert is_https_url(value) == reference_https(value)


def _event(**over):
    d = {"event": "published", "post_id": "p1", "user_id": "u1", "caption": "#a #B",
         "image_url": "https://img.example/1.jpg", "event_time": "2026-11-22T10:00:00Z", "event_id": "e1"}
    d.update(over)
    return d


@given(st.text(max_size=40), st.sampled_from(["published", "deleted"]), st.booleans())
def test_str_and_bytes_payloads_parse_alike(caption, kind, ascii_only):
    body = json.dumps(_event(caption=caption, event=kind), ensure_ascii=ascii_only)
    from_str = parse_post_event(body)
    try:
        raw = body.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: only the str form exists, and it is rejected
        assert isinstance(from_str, Rejected)
        return
    assert from_str == parse_post_event(raw)


def test_lone_surrogate_str_is_rejected_as_before():
    assert parse_post_event('{"event":"published","caption":"\ud800"}').reason.startswith("payload is not UTF-8")


def test_oversized_ascii_str_payload_is_rejected_with_its_size():
    body = json.dumps(_event(caption="x" * settings.MAX_MESSAGE_BYTES))
    r = parse_post_event(body)
    assert isinstance(r, Rejected) and r.reason.startswith(f"post event message is {len(body)} bytes")


def test_fields_tuple_is_the_post_event():
    for body in (_event(), _event(event="deleted", caption=None, hashtags=["#x"]), _event(event_id=None)):
        body = {k: v for k, v in body.items() if v is not None}
        fields = parse_post_event_fields(json.dumps(body))
        event = parse_post_event(json.dumps(body))
        assert isinstance(event, PostEvent)
        assert event == PostEvent(*fields) == post_event_from_fields(fields)
        assert tuple(getattr(event, n) for n in POST_EVENT_FIELDS) == fields
        assert hash(event) == hash(PostEvent(*fields)) and repr(event) == repr(PostEvent(*fields))
    assert parse_post_event_fields("[]") == parse_post_event("[]")


def test_fast_built_event_pickles_like_the_dataclass():
    import pickle

    fields = parse_post_event_fields(json.dumps(_event()))
    e = post_event_from_fields(fields)
    assert pickle.loads(pickle.dumps(e)) == PostEvent(*fields)


def test_userinfo_is_not_an_image_url():
    assert not is_https_url("https://user:pass@img.example/x.jpg")
    assert not is_https_url("https://user@img.example/x.jpg")
    assert not is_https_url("https://@img.example/x.jpg")
    assert not is_https_url("https://cdn.example.com@evil.test/x.jpg")
    assert not is_https_url("https://us%40er:p@ss@img.example/x.jpg")
    assert is_https_url("https://img.example/p/a@2x.jpg")  # '@' in the path is no userinfo
    assert is_https_url("https://img.example/x.jpg?by=a@b")
