"""Post events and top-posts messages: parse and validate (DESIGN.md "Messages"). Pure.

Parsers never raise, whatever the input (any bytes or str, any attribute map): they return
:class:`Rejected` with a reason string that the jobs put on the dead-letter output beside the
original payload. What they accept, every sink downstream can encode (issue 8, "no message can stop
the job"):

* no string field (ids, caption, image URL, ``hashtags`` entries, top-posts post ids) holds a lone
  surrogate (JSON ``"\\ud800"`` decodes to one; it cannot be encoded as UTF-8, so an archive line or
  a Bigtable cell built from it would raise);
* ids (``post_id``, ``user_id``, ``event_id``, top-posts ``post_id``) hold no control character
  (C0, DEL, C1; NUL included); image URLs hold no C0 control or DEL;
* ``event_time`` and ``computed_at`` lie within :class:`Bounds`: not before the floor (every cell
  timestamp stays positive) and not more than the skew after ``now``. ``now=None`` skips the future
  check: the batch recount re-parses archived lines that the streaming job checked on arrival;
* a post counts at most ``settings.MAX_TAGS_PER_POST`` distinct tags (:meth:`PostEvent.tags`), so one
  message causes a bounded number of count updates.

Attributes of a ``post-events`` message may carry ``event_time`` (RFC 3339, or epoch milliseconds:
the two forms Dataflow's ``timestamp_attribute`` reads) and ``event_id``. Either may stand in for a
missing body field; when attribute and body both carry one they must agree (the same instant to the
millisecond, equal ids), else the message is rejected. With ``require_attributes=True`` (the
Dataflow path, whose read takes the element timestamp and de-duplication id from the attributes)
a missing attribute is a rejection too.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Union
from urllib.parse import urlsplit

from hashtags import settings
from hashtags.layout import EPOCH as _EPOCH, UTC, TopPost, to_millis
from hashtags.text import distinct_tags, is_valid_key, normalize_tag

PUBLISHED = "published"
DELETED = "deleted"
EVENT_TYPES = (PUBLISHED, DELETED)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The event times a job accepts: ``floor <= t <= now + max_future_skew``."""

    floor: dt.datetime = settings.EVENT_TIME_FLOOR
    max_future_skew: dt.timedelta = settings.MAX_FUTURE_SKEW


DEFAULT_BOUNDS = Bounds()


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
        """Distinct (normalised key, spelling as first written) pairs this post counts for: the
        first ``settings.MAX_TAGS_PER_POST`` keys, of the ``hashtags`` list if there is one, else of
        the caption."""
        if self.hashtags is not None:
            return listed_tags(self.hashtags, settings.MAX_TAGS_PER_POST)
        return distinct_tags(self.caption, settings.MAX_TAGS_PER_POST)

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


def listed_tags(entries, limit: int) -> list[tuple[str, str]]:
    """``distinct_tags`` of a tag list (``#`` optional): the first ``limit`` distinct valid keys."""
    seen: dict[str, str] = {}
    for raw in entries:
        tag = raw[1:] if raw[:1] in ("#", "＃") else raw
        if not tag or len(tag) > settings.MAX_TAG_LENGTH:
            continue
        key = normalize_tag(tag)
        if is_valid_key(key) and key not in seen:
            seen[key] = tag
            if len(seen) == limit:
                break
    return list(seen.items())


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
        if ts.tzinfo is None:
            return None
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        return None


def parse_attribute_time(value: Any) -> dt.datetime | None:
    """An ``event_time`` attribute: RFC 3339 like the body, or epoch milliseconds (both are what
    Dataflow's ``timestamp_attribute`` accepts, see ReadFromPubSub's docstring in Beam 2.77)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 15:
            return None
        try:
            return _EPOCH + dt.timedelta(milliseconds=int(value))
        except OverflowError:  # past year 9999
            return None
    return parse_time(value)


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BAD_ID_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _has_surrogate(value: str) -> bool:
    return not value.isascii() and _SURROGATE.search(value) is not None


def _bad_id(value: str) -> bool:
    """A control character or a lone surrogate (for ASCII, isprintable() is exactly 0x20-0x7e)."""
    if value.isascii():
        return not value.isprintable()
    return _BAD_ID_CHAR.search(value) is not None


_BAD_URL_CHAR = re.compile(r"[\x00-\x20\"'<>\\\x7f\ud800-\udfff]")
_PLAIN_HTTPS_URL = re.compile(r"https://[^/?#\[\]@\"'<>\\\x00-\x20\x7f]+(?:[/?#][^\"'<>\\\x00-\x20\x7f]*)?\Z")


def _https_url(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > settings.MAX_URL_LENGTH:
        return None
    if value.isascii() and _PLAIN_HTTPS_URL.match(value) is not None:
        # Fast path (~10x cheaper than urlsplit), the same answer: an ASCII value starting with exactly
        # "https://", a non-empty netloc up to the first '/', '?' or '#' without '[' or ']' (IPv6
        # hosts, where urlsplit may raise) or '@' (userinfo), and no bad character anywhere. urlsplit
        # strips nothing from such a value and gives scheme "https" and that netloc; anything else
        # takes the slow path.
        return value
    if _BAD_URL_CHAR.search(value) is not None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme != "https" or not parts.netloc or "@" in parts.netloc:
        return None
    return value


def is_https_url(value: Any) -> bool:
    """An ``https:`` URL with a host and no userinfo (``https://user:pass@host/`` is refused: a
    credential in a page, or a host that reads as another one, ``https://cdn.example@evil.test/``)."""
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


def _id_field(obj: Mapping, name: str) -> str | Rejected:
    value = _string_field(obj, name, settings.MAX_POST_ID_LENGTH)
    if type(value) is str and _bad_id(value):
        return Rejected(f"field '{name}' holds a control character or a lone surrogate: {value[:40]!r}")
    return value


def _bounded(name: str, ts: dt.datetime, raw: Any, now: dt.datetime | None, bounds: Bounds) -> Rejected | None:
    if ts < bounds.floor:
        return Rejected(f"field '{name}' is before the floor {bounds.floor.isoformat()}: {str(raw)[:40]!r}")
    if now is not None and ts > now + bounds.max_future_skew:
        return Rejected(f"field '{name}' is in the future, more than {bounds.max_future_skew.total_seconds():g} s "
                        f"after {now.isoformat(timespec='seconds')}: {str(raw)[:40]!r}")
    return None


def _attribute(attributes: Mapping | None, name: str, required: bool) -> str | Rejected | None:
    value = attributes.get(name) if attributes else None
    if value is None:
        return Rejected(f"missing attribute '{name}' (required on this path)") if required else None
    if not isinstance(value, str):
        return Rejected(f"attribute '{name}' must be a string, got {type(value).__name__}")
    return value


def _event_time(obj: Mapping, attributes: Mapping | None, require: bool) -> dt.datetime | Rejected:
    """The body's event_time (or the attribute's, when the body has none), checked against the
    attribute when both are there."""
    attr = _attribute(attributes, "event_time", require)
    if type(attr) is Rejected:
        return attr
    raw = obj.get("event_time")
    if raw is None:
        if attr is None:
            return Rejected("missing field 'event_time'")
        ts = parse_attribute_time(attr)
        if ts is None:
            return Rejected(f"attribute 'event_time' is not an RFC 3339 timestamp with offset: {attr[:40]!r}")
        return ts
    ts = parse_time(raw)
    if ts is None:
        return Rejected(f"field 'event_time' is not an RFC 3339 timestamp with offset: {str(raw)[:40]!r}")
    if attr is not None and attr != raw:
        at = parse_attribute_time(attr)
        if at is None:
            return Rejected(f"attribute 'event_time' is not an RFC 3339 timestamp or epoch milliseconds: "
                            f"{attr[:40]!r}")
        if to_millis(at) != to_millis(ts):
            return Rejected(f"attribute 'event_time' {attr[:40]!r} and field 'event_time' {raw!r} "
                            "are different instants")
    return ts


def _event_id(obj: Mapping, attributes: Mapping | None, require: bool) -> str | Rejected | None:
    attr = _attribute(attributes, "event_id", require)
    if type(attr) is Rejected:
        return attr
    value = obj.get("event_id")
    if value is None:
        value = attr
        if value is None:
            return None
    elif not isinstance(value, str):
        return Rejected(f"field 'event_id' must be a string, got {type(value).__name__}")
    elif attr is not None and attr != value:
        return Rejected(f"attribute 'event_id' {attr[:40]!r} differs from field 'event_id' {value[:40]!r}")
    if len(value) > settings.MAX_POST_ID_LENGTH:
        return Rejected(f"field 'event_id' is longer than {settings.MAX_POST_ID_LENGTH} characters")
    if _bad_id(value):
        return Rejected(f"field 'event_id' holds a control character or a lone surrogate: {value[:40]!r}")
    return value


class PostEventFields(NamedTuple):
    """A validated post event's fields (PostEvent's, in its order), without the PostEvent."""

    event: str
    post_id: str
    user_id: str
    caption: str
    image_url: str | None
    event_time: dt.datetime
    event_id: str | None
    hashtags: tuple[str, ...] | None


POST_EVENT_FIELDS = PostEventFields._fields
# tuple.__new__ directly: a third of the cost of the NamedTuple's own __new__ (a Python function),
# the same object.
_new_fields = tuple.__new__
_new_object = object.__new__
_set_attribute = object.__setattr__


def parse_post_event(data: bytes | str, attributes: Mapping[str, str] | None = None, *,
                     now: dt.datetime | None = None, bounds: Bounds | None = None,
                     require_attributes: bool = False) -> ParsedEvent:
    """Parse one ``post-events`` message (see the module doc for ``attributes``, ``now``, ``bounds``
    and ``require_attributes``)."""
    fields = parse_post_event_fields(data, attributes, now=now, bounds=bounds,
                                     require_attributes=require_attributes)
    if type(fields) is Rejected:
        return fields
    return post_event_from_fields(fields)


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


def parse_post_event_fields(data: bytes | str, attributes: Mapping[str, str] | None = None, *,
                            now: dt.datetime | None = None, bounds: Bounds | None = None,
                            require_attributes: bool = False) -> PostEventFields | Rejected:
    """``parse_post_event`` without building the PostEvent (the batch recount packs the fields
    straight away): the same validation, returning :class:`PostEventFields` or ``Rejected``."""
    if attributes is not None and type(attributes) is not dict and not isinstance(attributes, Mapping):
        return Rejected(f"attributes must be a map, got {type(attributes).__name__}")
    obj = _load_object(data, "post event")
    if type(obj) is Rejected:
        return obj
    event = obj.get("event")
    if event not in EVENT_TYPES:
        return Rejected(f"field 'event' must be one of {list(EVENT_TYPES)}, got {str(event)[:40]!r}")
    post_id = _id_field(obj, "post_id")
    if type(post_id) is Rejected:
        return post_id
    user_id = _id_field(obj, "user_id")
    if type(user_id) is Rejected:
        return user_id
    event_time = _event_time(obj, attributes, require_attributes)
    if type(event_time) is Rejected:
        return event_time
    out_of_bounds = _bounded("event_time", event_time, obj.get("event_time", event_time), now,
                             bounds or DEFAULT_BOUNDS)
    if out_of_bounds is not None:
        return out_of_bounds
    caption = obj.get("caption", "" if event == DELETED else None)
    if caption is None:
        if event == DELETED and "hashtags" in obj:
            caption = ""
        else:
            return Rejected("missing field 'caption'")
    if not isinstance(caption, str):
        return Rejected(f"field 'caption' must be a string, got {type(caption).__name__}")
    if caption.isascii():
        caption_bytes = len(caption)
    else:
        try:
            caption_bytes = len(caption.encode("utf-8"))
        except UnicodeEncodeError:
            return Rejected("field 'caption' holds a lone surrogate")
    if caption_bytes > settings.MAX_CAPTION_BYTES:
        return Rejected(f"caption is {caption_bytes} bytes, over the {settings.MAX_CAPTION_BYTES}-byte limit")
    hashtags = obj.get("hashtags")
    if hashtags is not None:
        if not isinstance(hashtags, list) or not all(isinstance(t, str) for t in hashtags):
            return Rejected("field 'hashtags' must be a list of strings")
        if len(hashtags) > 1000:
            return Rejected("field 'hashtags' has more than 1000 entries")
        if any(_has_surrogate(t) for t in hashtags):
            return Rejected("field 'hashtags' has an entry holding a lone surrogate")
        hashtags = tuple(hashtags)
    image_url = obj.get("image_url")
    if event == PUBLISHED:
        if image_url is None:
            return Rejected("missing field 'image_url'")
        if _https_url(image_url) is None:
            return Rejected(f"field 'image_url' must be an https URL, got {str(image_url)[:60]!r}")
    elif image_url is not None:
        if not isinstance(image_url, str):
            return Rejected(f"field 'image_url' must be a string, got {type(image_url).__name__}")
        if _has_surrogate(image_url):
            return Rejected("field 'image_url' holds a lone surrogate")
    event_id = _event_id(obj, attributes, require_attributes)
    if type(event_id) is Rejected:
        return event_id
    return _new_fields(PostEventFields, (event, post_id, user_id, caption, image_url, event_time, event_id, hashtags))


def parse_top_posts(data: bytes | str, *, now: dt.datetime | None = None,
                    bounds: Bounds | None = None) -> ParsedTopPosts:
    """Parse one ``top-posts`` message: a whole new top list for one hashtag. ``computed_at`` is held
    to the same bounds as a post's ``event_time`` (a year-2999 list would win over every later one)."""
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
    out_of_bounds = _bounded("computed_at", computed_at, raw_time, now, bounds or DEFAULT_BOUNDS)
    if out_of_bounds is not None:
        return out_of_bounds
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
        post_id = _id_field(p, "post_id")
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
