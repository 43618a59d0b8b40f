"""Post events and top-posts messages: parse and validate (DESIGN.md "Messages"). Pure.

Parsers never raise on bad input: they return :class:`Rejected` with a reason string that the
jobs put on the dead-letter output beside the original payload.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Union
from urllib.parse import urlsplit

from hashtags import settings
from hashtags.layout import UTC, TopPost
from hashtags.text import distinct_tags, is_valid_key, normalize_tag

PUBLISHED = "published"
DELETED = "deleted"
EVENT_TYPES = (PUBLISHED, DELETED)


@dataclass(frozen=True)
class PostEvent:
    event: str  # PUBLISHED | DELETED
    post_id: str
    user_id: str
    caption: str
    image_url: str | None
    event_time: dt.datetime  # timezone-aware UTC
    event_id: str | None = None
    hashtags: tuple[str, ...] | None = None  # a delete may carry the tag list instead of the caption

    @property
    def delta(self) -> int:
        return 1 if self.event == PUBLISHED else -1

    def tags(self) -> list[tuple[str, str]]:
        """Distinct (normalised key, spelling as first written) pairs this post counts for."""
        if self.hashtags is not None:
            seen: dict[str, str] = {}
            for raw in self.hashtags:
                tag = raw[1:] if raw[:1] in ("#", "＃") else raw
                if not tag or len(tag) > settings.MAX_TAG_LENGTH:
                    continue
                key = normalize_tag(tag)
                if is_valid_key(key):
                    seen.setdefault(key, tag)
            return list(seen.items())
        return distinct_tags(self.caption)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "event": self.event,
            "post_id": self.post_id,
            "user_id": self.user_id,
            "caption": self.caption,
            "image_url": self.image_url,
            "event_time": format_time(self.event_time),
        }
        if self.event_id is not None:
            d["event_id"] = self.event_id
        if self.hashtags is not None:
            d["hashtags"] = list(self.hashtags)
        return d

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class TopPostsUpdate:
    hashtag: str  # normalised key
    computed_at: dt.datetime  # rounded down to the millisecond
    posts: tuple[TopPost, ...]


@dataclass(frozen=True)
class Rejected:
    reason: str


ParsedEvent = Union[PostEvent, Rejected]
ParsedTopPosts = Union[TopPostsUpdate, Rejected]


def format_time(ts: dt.datetime) -> str:
    ts = ts.astimezone(UTC)
    if ts.microsecond:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> dt.datetime | None:
    """RFC 3339 with an explicit offset (``Z`` or ``±hh:mm``) → aware UTC datetime, else None."""
    if not isinstance(value, str) or not 20 <= len(value) <= 40:
        return None
    try:
        ts = dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is None:
        return None
    return ts.astimezone(UTC)


_BAD_URL_CHAR = re.compile(r"[\"'<> \t\r\n\\]")
_PLAIN_HTTPS_URL = re.compile(r"https://[^/?#\[\]\"'<> \t\r\n\\]+(?:[/?#][^\"'<> \t\r\n\\]*)?\Z")


def _https_url(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > settings.MAX_URL_LENGTH:
        return None
    if value.isascii() and _PLAIN_HTTPS_URL.match(value) is not None:
        # Fast path (~10x cheaper than urlsplit), the same answer: an ASCII value starting with exactly
        # "https://", a non-empty netloc up to the first '/', '?' or '#' without '[' or ']' (IPv6
        # hosts, where urlsplit may raise), and no bad character anywhere. urlsplit strips nothing
        # from such a value and gives scheme "https" and that netloc; anything else takes the slow path.
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme != "https" or not parts.netloc or _BAD_URL_CHAR.search(value) is not None:
        return None
    return value


def is_https_url(value: Any) -> bool:
    return _https_url(value) is not None


def _load_object(data: bytes | str, kind: str) -> dict | Rejected:
    text = None
    if isinstance(data, str):
        if data.isascii():  # fast path: as many bytes as characters, and the round trip is the identity
            text, size = data, len(data)
        else:
            data = data.encode("utf-8", "surrogatepass")
    if text is None:
        size = len(data)
    if size > settings.MAX_MESSAGE_BYTES:
        return Rejected(f"{kind} message is {size} bytes, over the {settings.MAX_MESSAGE_BYTES}-byte limit")
    try:
        obj = json.loads(text if text is not None else data.decode("utf-8"))
    except UnicodeDecodeError as e:
        return Rejected(f"payload is not UTF-8: {e.reason} at byte {e.start}")
    except (ValueError, RecursionError) as e:
        return Rejected(f"payload is not JSON: {str(e)[:120]}")
    if not isinstance(obj, dict):
        return Rejected(f"payload is JSON {type(obj).__name__}, expected an object")
    return obj


def _string_field(obj: Mapping, name: str, max_len: int, *, required: bool = True) -> str | Rejected | None:
    value = obj.get(name)
    if value is None:
        return Rejected(f"missing field '{name}'") if required else None
    if not isinstance(value, str):
        return Rejected(f"field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        return Rejected(f"field '{name}' is empty")
    if len(value) > max_len:
        return Rejected(f"field '{name}' is longer than {max_len} characters")
    return value


def parse_post_event(data: bytes | str, attributes: Mapping[str, str] | None = None) -> ParsedEvent:
    """Parse one ``post-events`` message. ``attributes`` may carry ``event_time`` and ``event_id``
    (the body's ``event_time`` wins when both are present)."""
    fields = parse_post_event_fields(data, attributes)
    if type(fields) is Rejected:
        return fields
    return post_event_from_fields(fields)


# PostEvent's field names, in the order of parse_post_event_fields' tuple.
POST_EVENT_FIELDS = ("event", "post_id", "user_id", "caption", "image_url", "event_time", "event_id", "hashtags")
_new_object = object.__new__
_set_attribute = object.__setattr__


def post_event_from_fields(fields: tuple) -> PostEvent:
    """The PostEvent of a ``parse_post_event_fields`` tuple (already validated), built without the
    frozen dataclass' ``__init__`` (one ``object.__setattr__`` per field): equal to
    ``PostEvent(*fields)``, half the cost."""
    e = _new_object(PostEvent)
    event, post_id, user_id, caption, image_url, event_time, event_id, hashtags = fields
    _set_attribute(e, "__dict__", {"event": event, "post_id": post_id, "user_id": user_id, "caption": caption,
                                   "image_url": image_url, "event_time": event_time, "event_id": event_id,
                                   "hashtags": hashtags})
    return e


def parse_post_event_fields(data: bytes | str, attributes: Mapping[str, str] | None = None) -> tuple | Rejected:
    """``parse_post_event`` without building the PostEvent (the batch recount packs the fields
    straight away): the same validation, returning the fields as a tuple in ``POST_EVENT_FIELDS``
    order, or ``Rejected``."""
    attributes = attributes or {}
    obj = _load_object(data, "post event")
    if isinstance(obj, Rejected):
        return obj
    event = obj.get("event")
    if event not in EVENT_TYPES:
        return Rejected(f"field 'event' must be one of {list(EVENT_TYPES)}, got {str(event)[:40]!r}")
    fields: dict[str, Any] = {}
    for name, limit in (("post_id", settings.MAX_POST_ID_LENGTH), ("user_id", settings.MAX_POST_ID_LENGTH)):
        value = _string_field(obj, name, limit)
        if isinstance(value, Rejected):
            return value
        fields[name] = value
    raw_time = obj.get("event_time", attributes.get("event_time"))
    if raw_time is None:
        return Rejected("missing field 'event_time'")
    event_time = parse_time(raw_time)
    if event_time is None:
        return Rejected(f"field 'event_time' is not an RFC 3339 timestamp with offset: {str(raw_time)[:40]!r}")
    caption = obj.get("caption", "" if event == DELETED else None)
    if caption is None:
        if event == DELETED and "hashtags" in obj:
            caption = ""
        else:
            return Rejected("missing field 'caption'")
    if not isinstance(caption, str):
        return Rejected(f"field 'caption' must be a string, got {type(caption).__name__}")
    caption_bytes = len(caption) if caption.isascii() else len(caption.encode("utf-8", "surrogatepass"))
    if caption_bytes > settings.MAX_CAPTION_BYTES:
        return Rejected(f"caption is {caption_bytes} bytes, over the {settings.MAX_CAPTION_BYTES}-byte limit")
    hashtags = obj.get("hashtags")
    if hashtags is not None:
        if not isinstance(hashtags, list) or not all(isinstance(t, str) for t in hashtags):
            return Rejected("field 'hashtags' must be a list of strings")
        if len(hashtags) > 1000:
            return Rejected("field 'hashtags' has more than 1000 entries")
        hashtags = tuple(hashtags)
    image_url = obj.get("image_url")
    if event == PUBLISHED:
        if image_url is None:
            return Rejected("missing field 'image_url'")
        if _https_url(image_url) is None:
            return Rejected(f"field 'image_url' must be an https URL, got {str(image_url)[:60]!r}")
    elif image_url is not None and not isinstance(image_url, str):
        return Rejected(f"field 'image_url' must be a string, got {type(image_url).__name__}")
    event_id = obj.get("event_id", attributes.get("event_id"))
    if event_id is not None and not isinstance(event_id, str):
        return Rejected(f"field 'event_id' must be a string, got {type(event_id).__name__}")
    return (event, fields["post_id"], fields["user_id"], caption, image_url, event_time, event_id, hashtags)


def parse_top_posts(data: bytes | str) -> ParsedTopPosts:
    """Parse one ``top-posts`` message: a whole new top list for one hashtag."""
    obj = _load_object(data, "top-posts")
    if isinstance(obj, Rejected):
        return obj
    tag = obj.get("hashtag")
    if not isinstance(tag, str):
        return Rejected("field 'hashtag' must be a string" if tag is not None else "missing field 'hashtag'")
    if tag[:1] in ("#", "＃"):
        tag = tag[1:]
    if not tag or len(tag) > settings.MAX_TAG_LENGTH:
        return Rejected(f"hashtag {tag[:40]!r} is empty or longer than {settings.MAX_TAG_LENGTH} characters")
    key = normalize_tag(tag)
    if not is_valid_key(key):
        return Rejected(f"hashtag {tag[:40]!r} does not normalise to a valid hashtag")
    raw_time = obj.get("computed_at")
    computed_at = parse_time(raw_time)
    if computed_at is None:
        return Rejected(f"field 'computed_at' is not an RFC 3339 timestamp with offset: {str(raw_time)[:40]!r}")
    computed_at = computed_at.replace(microsecond=computed_at.microsecond // 1000 * 1000)
    posts = obj.get("posts")
    if not isinstance(posts, list):
        return Rejected("field 'posts' must be a list" if posts is not None else "missing field 'posts'")
    if len(posts) > settings.MAX_TOP_POSTS:
        return Rejected(f"{len(posts)} posts, more than {settings.MAX_TOP_POSTS}")
    out: list[TopPost] = []
    seen: set[str] = set()
    for i, p in enumerate(posts):
        if not isinstance(p, dict):
            return Rejected(f"posts[{i}] must be an object")
        post_id = _string_field(p, "post_id", settings.MAX_POST_ID_LENGTH)
        if isinstance(post_id, Rejected):
            return Rejected(f"posts[{i}]: {post_id.reason}")
        if post_id in seen:
            return Rejected(f"posts[{i}]: duplicate post_id {post_id[:40]!r}")
        seen.add(post_id)
        url = _https_url(p.get("image_url"))
        if url is None:
            return Rejected(f"posts[{i}]: 'image_url' must be an https URL, got {str(p.get('image_url'))[:60]!r}")
        out.append(TopPost(post_id, url))
    return TopPostsUpdate(hashtag=key, computed_at=computed_at, posts=tuple(out))
