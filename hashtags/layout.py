"""The ``hashtags`` table layout: what every cell means. Pure (no client library imports).

One row per hashtag, row key = the normalised tag (UTF-8).

| family   | column    | cell timestamp            | value                                          |
|----------|-----------|---------------------------|------------------------------------------------|
| counts   | h.<gen>   | start of the hour window  | posts in that hour counted by count generation  |
|          |           |                           | <gen>, signed int64 big-endian                  |
| counts   | base      | as_of (midnight UTC)      | exact count of posts with event time < as_of    |
| top      | posts     | computed_at (ms)          | JSON list of {"post_id", "image_url"}          |
| meta     | display   | start of the hour window  | display spelling (UTF-8)                        |

Total posts = latest ``counts:base`` + the ``counts:h.<gen>`` cells of EVERY generation at or after
that base's timestamp (:func:`total_posts`, the one place this rule lives).

Count generations: ``<gen>`` is the streaming job's ``--count_generation`` (a non-negative decimal
int). An in-place ``--update`` keeps it (the window state carries over, so the job keeps rewriting
its own cells); a relaunch (drain + new job) bumps it, so the new job's partial window state writes
cells of its own instead of overwriting the drained job's counts for the same hours. The hours a
drain and a relaunch share are then the sum of two cells, each exact for the events its job saw.

Every write is a SetCell at a fixed (row, column, timestamp), so replays are idempotent. Cell
timestamps are rounded down to the millisecond (:func:`cell_time`), Bigtable's granularity.
"""
from __future__ import annotations

import datetime as dt
import json
import struct
from dataclasses import dataclass, field
from typing import Iterable, Sequence

FAMILY_COUNTS = "counts"
FAMILY_TOP = "top"
FAMILY_META = "meta"

HOUR_PREFIX = b"h."
COL_BASE = b"base"
COL_TOP_POSTS = b"posts"
COL_DISPLAY = b"display"

HOUR_CELL_MAX_AGE_DAYS = 14
"""``counts:h.<gen>`` cells older than this may be collected. Longer than the longest recount outage we
tolerate (a week), because hour cells after the last base are part of the total."""
BASE_VERSIONS_KEPT = 3


@dataclass(frozen=True)
class GcRule:
    """A column family's garbage-collection rule, as data.

    ``max_age_days`` and ``max_versions`` both set → intersection: a cell is collected only when it
    is older than ``max_age_days`` AND beyond the newest ``max_versions`` (so the newest base
    versions survive a long recount outage)."""

    max_versions: int | None = None
    max_age_days: int | None = None


COLUMN_FAMILIES: dict[str, GcRule] = {
    FAMILY_COUNTS: GcRule(max_versions=BASE_VERSIONS_KEPT, max_age_days=HOUR_CELL_MAX_AGE_DAYS),
    FAMILY_TOP: GcRule(max_versions=1),
    FAMILY_META: GcRule(max_versions=1),
}

_INT64 = struct.Struct(">q")
UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def encode_count(n: int) -> bytes:
    return _INT64.pack(n)


def decode_count(value: bytes) -> int:
    if len(value) != 8:
        raise ValueError(f"a count cell holds 8 bytes, got {len(value)}")
    return _INT64.unpack(value)[0]


def hour_column(generation: int) -> bytes:
    """The hour-count qualifier of count generation ``generation``: ``h.<gen>`` (decimal)."""
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"a count generation is a non-negative int, got {generation!r}")
    return HOUR_PREFIX + str(generation).encode("ascii")


def is_hour_column(qualifier: bytes) -> bool:
    """True for ``h.<gen>`` qualifiers (``h.`` + ASCII digits), whatever the generation."""
    return qualifier.startswith(HOUR_PREFIX) and qualifier[len(HOUR_PREFIX):].isdigit()  # bytes: ASCII only


def row_key(normalized_tag: str) -> bytes:
    return normalized_tag.encode("utf-8")


def to_millis(ts: dt.datetime) -> int:
    """Bigtable cell timestamps have millisecond granularity."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def cell_time(ts: dt.datetime) -> dt.datetime:
    """``ts`` rounded down to the millisecond, in UTC: the timestamp a cell really gets."""
    return from_millis(to_millis(ts))


def hour_start(ts: dt.datetime) -> dt.datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class TopPost:
    post_id: str
    image_url: str


def encode_top_posts(posts: Sequence[TopPost]) -> bytes:
    return json.dumps(
        [{"post_id": p.post_id, "image_url": p.image_url} for p in posts],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def decode_top_posts(value: bytes) -> list[TopPost]:
    raw = json.loads(value.decode("utf-8"))
    if not isinstance(raw, list):
        raise ValueError("top:posts holds a JSON list")
    return [TopPost(str(p["post_id"]), str(p["image_url"])) for p in raw]


@dataclass(frozen=True)
class Cell:
    """A decoded-enough view of one Bigtable cell: value bytes and timestamp in ms."""

    value: bytes
    timestamp_ms: int


def total_posts(base: Cell | None, hours: Iterable[Cell]) -> int:
    """The total rule: latest base + every hour cell at/after the base's as_of.

    ``hours`` holds the hour cells of EVERY count generation (``counts:h.<gen>``): two generations'
    cells for the same hour are different events (each job counted only what it saw), so they add.
    Without a base (a tag newer than the last recount) the total is the sum of all hour cells."""
    as_of = base.timestamp_ms if base is not None else None
    total = decode_count(base.value) if base is not None else 0
    for cell in hours:
        if as_of is None or cell.timestamp_ms >= as_of:
            total += decode_count(cell.value)
    return max(total, 0)


@dataclass(frozen=True)
class PageDocument:
    """Everything the hashtag page shows, read from one row."""

    hashtag: str
    display_name: str
    total_posts: int
    top_posts: tuple[TopPost, ...] = ()
    updated_at: dt.datetime | None = None  # newest cell timestamp in the row
    base_as_of: dt.datetime | None = None
    top_computed_at: dt.datetime | None = None

    def to_json(self) -> dict:
        return {
            "hashtag": self.hashtag,
            "display_name": self.display_name,
            "total_posts": self.total_posts,
            "top_posts": [{"post_id": p.post_id, "image_url": p.image_url} for p in self.top_posts],
            "updated_at": self.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            if self.updated_at
            else None,
        }


def page_document(
    hashtag: str,
    *,
    base: Cell | None,
    hours: Sequence[Cell],
    top: Cell | None,
    display: Cell | None,
) -> PageDocument:
    """Assemble the page document from the cells of one row (the adapter does the I/O)."""
    top_posts: tuple[TopPost, ...] = ()
    if top is not None:
        try:
            top_posts = tuple(decode_top_posts(top.value))
        except (ValueError, KeyError, TypeError):
            top_posts = ()
    display_name = hashtag
    if display is not None:
        try:
            display_name = display.value.decode("utf-8") or hashtag
        except UnicodeDecodeError:
            display_name = hashtag
    stamps = [c.timestamp_ms for c in (base, top, display, *hours) if c is not None]
    return PageDocument(
        hashtag=hashtag,
        display_name=display_name,
        total_posts=total_posts(base, hours),
        top_posts=top_posts,
        updated_at=from_millis(max(stamps)) if stamps else None,
        base_as_of=from_millis(base.timestamp_ms) if base else None,
        top_computed_at=from_millis(top.timestamp_ms) if top else None,
    )
