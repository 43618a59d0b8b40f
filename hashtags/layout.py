"""The ``hashtags`` table layout: what every cell means. Pure (no client library imports).

One row per hashtag, row key = the normalised tag (UTF-8).

| family   | column     | cell timestamp            | value                                          |
|----------|------------|---------------------------|------------------------------------------------|
| counts   | h.<gen>    | start of the hour window  | posts in that hour counted by count generation  |
|          |            |                           | <gen>, signed int64 big-endian                  |
| counts   | u.<gen>    | start of the hour window  | distinct accounts (user_id) that published with |
|          |            |                           | the tag in that hour, counted by generation     |
|          |            |                           | <gen> (exact; int64 BE): live accounts          |
| counts   | base       | as_of (midnight UTC)      | exact count of posts with event time < as_of    |
| days     | p.YYYYMMDD | as_of of the run          | exact posts published that UTC day (int64 BE)   |
| days     | a.YYYYMMDD | as_of of the run          | distinct accounts (user_id) that published that |
|          |            |                           | UTC day (int64 BE)                              |
| top      | posts      | computed_at (ms)          | JSON list of {"post_id", "image_url"}          |
| meta     | display    | start of the hour window  | display spelling (UTF-8)                        |
| meta     | related    | as_of of the run          | JSON list of {"tag", "posts"}, at most 10,      |
|          |            |                           | best first (tags on the same posts, last 7 days)|
| meta     | flags      | time of the change        | JSON {"hidden", "sensitive", "trend", "reason", |
|          |            |                           | "by", "changed_at"} (moderation, operator       |
|          |            |                           | command; trend: allowed / rejected / pending)   |

One reserved row, ``\\x00trends`` (NUL first, like the run records: no tag has that key), holds the
ranked trending tags in ``meta:trends`` at the minute they were computed (hashtags.trends).

Readers take the newest version of every column except the hour cells (all versions, see below).
The nightly run writes ``days`` and ``meta:related`` at its as_of M, after reading the latest version
before M, so a rerun of the same night rewrites the same cells (idempotent, like ``counts:base``).
Decoders of JSON / count cells written by other jobs or operators are total where the page reads
them: an undecodable value reads as empty / default, never an exception on the page path.

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
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

FAMILY_COUNTS = "counts"
FAMILY_TOP = "top"
FAMILY_META = "meta"
FAMILY_DAYS = "days"

HOUR_PREFIX = b"h."
ACCOUNTS_PREFIX = b"u."
TRENDS_ROW = b"\x00trends"
COL_TRENDS = b"trends"
COL_BASE = b"base"
COL_TOP_POSTS = b"posts"
COL_DISPLAY = b"display"
COL_RELATED = b"related"
COL_FLAGS = b"flags"
HIDDEN_INDEX_ROW = b"\x00hidden"
"""A reserved row (NUL first: no tag key starts with it): ``meta:<tag key>`` = b"1" while the tag is
hidden, b"0" once cleared, written with the tag's ``meta:flags`` at the same timestamp (newest wins;
meta keeps one version). The nightly reads the hidden tags from this ONE row, not a table scan."""
DAY_POSTS_PREFIX = b"p."
DAY_ACCOUNTS_PREFIX = b"a."

HOUR_CELL_MAX_AGE_DAYS = 14
"""``counts:h.<gen>`` cells older than this may be collected. Longer than the longest recount outage we
tolerate (a week), because hour cells after the last base are part of the total."""
BASE_VERSIONS_KEPT = 5  # a rerun after failed nights still finds its last recorded run's base (hashtags/post_state.py "What a run reads as applied")
DAY_CELL_MAX_AGE_DAYS = 35
"""``days`` cells older than this may be collected: a cell is rewritten (at a newer as_of) whenever a
night's changes touch its day, so only days untouched for five weeks age out; the page shows 7."""
RELATED_MAX = 10
HOURS_KEPT_DAYS = 7
"""PageDocument.hours starts at midnight UTC this many days before the day of the newest hour cell."""
_DAY_MS = 86_400_000


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
    FAMILY_DAYS: GcRule(max_age_days=DAY_CELL_MAX_AGE_DAYS),
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


def accounts_column(generation: int) -> bytes:
    """The live-accounts qualifier of count generation ``generation``: ``u.<gen>``."""
    return ACCOUNTS_PREFIX + hour_column(generation)[len(HOUR_PREFIX):]


def is_accounts_column(qualifier: bytes) -> bool:
    return qualifier.startswith(ACCOUNTS_PREFIX) and qualifier[len(ACCOUNTS_PREFIX):].isdigit()


def hour_accounts(cells: Iterable[Cell]) -> dict[int, int]:
    """Hour start (ms) → distinct accounts, from ``counts:u.<gen>`` cells of any generations. Two
    generations' sets for one hour (a relaunch inside it) may overlap, so the larger one is taken:
    a lower bound for that hour, exact for every other."""
    out: dict[int, int] = {}
    for c in cells:
        if len(c.value) == 8:
            n = decode_count(c.value)
            if n > out.get(c.timestamp_ms, -1):
                out[c.timestamp_ms] = n
    return out


def is_hour_column(qualifier: bytes) -> bool:
    """True for ``h.<gen>`` qualifiers (``h.`` + ASCII digits), whatever the generation."""
    return qualifier.startswith(HOUR_PREFIX) and qualifier[len(HOUR_PREFIX):].isdigit()  # bytes: ASCII only


def row_key(normalized_tag: str) -> bytes:
    return normalized_tag.encode("utf-8")


def day_posts_column(day: dt.date) -> bytes:
    """``p.YYYYMMDD``: exact posts published on that UTC day."""
    return DAY_POSTS_PREFIX + _day_digits(day)


def day_accounts_column(day: dt.date) -> bytes:
    """``a.YYYYMMDD``: distinct accounts that published on that UTC day."""
    return DAY_ACCOUNTS_PREFIX + _day_digits(day)


def _day_digits(day: dt.date) -> bytes:
    if isinstance(day, dt.datetime) or not isinstance(day, dt.date):
        raise ValueError(f"a day column names a date, got {day!r}")
    return day.strftime("%Y%m%d").encode("ascii")


class DayCounts(NamedTuple):
    """What a night writes for one day of one tag (either may be None: that cell is not written)."""

    posts: int | None
    accounts: int | None


class DayColumn(NamedTuple):
    kind: str  # "p" (posts) or "a" (accounts)
    day: dt.date


def parse_day_column(qualifier: bytes) -> DayColumn | None:
    """``p.YYYYMMDD`` / ``a.YYYYMMDD`` → (kind, day); anything else → None."""
    kind, digits = qualifier[:2], qualifier[2:]
    if kind not in (DAY_POSTS_PREFIX, DAY_ACCOUNTS_PREFIX) or len(digits) != 8 or not digits.isdigit():
        return None
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return DayColumn(kind[:1].decode("ascii"), day)


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


@dataclass(frozen=True, slots=True)
class RelatedTag:
    tag: str  # the related tag's key (normalised)
    posts: int  # posts carrying both tags over the window


def encode_related(tags: Sequence[RelatedTag]) -> bytes:
    """``meta:related``: at most RELATED_MAX tags, best first (the caller's order is kept)."""
    if len(tags) > RELATED_MAX:
        raise ValueError(f"at most {RELATED_MAX} related tags, got {len(tags)}")
    return json.dumps([{"tag": t.tag, "posts": t.posts} for t in tags],
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_related(value: bytes) -> tuple[RelatedTag, ...]:
    """Total: an undecodable value → (); malformed entries are dropped; at most RELATED_MAX kept."""
    raw = _json_or_none(value)
    if not isinstance(raw, list):
        return ()
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        tag, posts = entry.get("tag"), entry.get("posts")
        if isinstance(tag, str) and tag and _is_int(posts) and posts >= 0:
            out.append(RelatedTag(tag, posts))
    return tuple(out[:RELATED_MAX])


@dataclass(frozen=True, slots=True)
class Flags:
    """Moderation flags of a tag (``meta:flags``). ``hidden``: the page and API answer 404 and the tag
    is never related; ``sensitive``: tiles stay covered until the visitor asks."""

    hidden: bool = False
    sensitive: bool = False
    reason: str = ""
    by: str = ""
    changed_at: dt.datetime | None = None
    trend: str = "pending"  # trend review: "allowed", "rejected" or "pending" (never reviewed)


def encode_flags(flags: Flags) -> bytes:
    return json.dumps({
        "hidden": flags.hidden,
        "sensitive": flags.sensitive,
        "reason": flags.reason,
        "by": flags.by,
        "changed_at": rfc3339(flags.changed_at) if flags.changed_at else None,
        "trend": flags.trend,
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_flags(value: bytes) -> Flags:
    """Total: anything that is not the JSON object encode_flags writes → Flags() (no flag)."""
    raw = _json_or_none(value)
    if not isinstance(raw, dict):
        return Flags()
    hidden, sensitive = raw.get("hidden", False), raw.get("sensitive", False)
    reason, by = raw.get("reason", ""), raw.get("by", "")
    trend = raw.get("trend", "pending")  # cells written before trend review have no "trend"
    if not (isinstance(hidden, bool) and isinstance(sensitive, bool)
            and isinstance(reason, str) and isinstance(by, str)):
        return Flags()
    if trend not in ("allowed", "rejected", "pending"):
        trend = "pending"
    return Flags(hidden, sensitive, reason, by, parse_rfc3339(raw.get("changed_at")), trend)


def rfc3339(ts: dt.datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2026-12-01T11:40:00.123Z``."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(text: object) -> dt.datetime | None:
    """An RFC 3339 timestamp with an offset or ``Z`` → aware UTC datetime; anything else → None."""
    if not isinstance(text, str):
        return None
    try:
        ts = dt.datetime.fromisoformat(text)  # Python 3.11 accepts the Z suffix
    except ValueError:
        return None
    return ts.astimezone(UTC) if ts.tzinfo is not None else None


def _json_or_none(value: bytes):
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


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


class HourUse(NamedTuple):  # a tuple: a row carries up to 14 x 24 of them, built on every page read
    start: dt.datetime  # start of the hour (UTC)
    posts: int  # the hour cells of every count generation, summed


@dataclass(frozen=True, slots=True)
class DayUse:
    day: dt.date
    posts: int  # the newest ``days:p.`` cell; 0 when the day has only an ``a.`` cell
    accounts: int | None  # the newest ``days:a.`` cell; None without one


@dataclass(frozen=True)
class PageDocument:
    """Everything the hashtag page shows, read from one row."""

    hashtag: str
    display_name: str
    total_posts: int
    top_posts: tuple[TopPost, ...] = ()
    updated_at: dt.datetime | None = None  # newest timestamp of the count, top and display cells
    base_as_of: dt.datetime | None = None
    top_computed_at: dt.datetime | None = None
    hours: tuple[HourUse, ...] = ()  # the last HOURS_KEPT_DAYS days' hours (hour_uses), oldest first
    days: tuple[DayUse, ...] = ()  # every day with a ``days`` cell, oldest first
    related: tuple[RelatedTag, ...] = ()
    related_as_of: dt.datetime | None = None
    flags: Flags = Flags()
    accounts: tuple[HourUse, ...] = ()  # live distinct accounts per hour (counts:u.), oldest first

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
    days: Sequence[tuple[bytes, Cell]] = (),
    related: Cell | None = None,
    flags: Cell | None = None,
    accounts: Sequence[Cell] = (),
) -> PageDocument:
    """Assemble the page document from the cells of one row (the adapter does the I/O).

    ``days`` holds ``(qualifier, cell)`` pairs of the ``days`` family, any number of versions (the
    newest of each column wins); ``related`` and ``flags`` the newest ``meta:related`` / ``meta:flags``."""
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
        hours=hour_uses(hours),
        days=day_uses(days),
        related=decode_related(related.value) if related is not None else (),
        related_as_of=from_millis(related.timestamp_ms) if related is not None else None,
        flags=decode_flags(flags.value) if flags is not None else Flags(),
        accounts=tuple(HourUse(_shared_time(ms), n) for ms, n in sorted(hour_accounts(accounts).items())),
    )


def hour_uses(hours: Sequence[Cell]) -> tuple[HourUse, ...]:
    """Posts per hour, every generation's cell for an hour added (as in the total rule), oldest first,
    for the hours from midnight UTC ``HOURS_KEPT_DAYS`` days before the row's newest hour cell's day
    (a 7-day history ending at or after that cell never reaches further back; the other hour cells,
    up to 14 days of them, only matter to the total). A cell that is not an 8-byte count is skipped
    (the history is display, not the total)."""
    if not hours:
        return ()
    newest = max([c.timestamp_ms for c in hours])
    first = newest - newest % _DAY_MS - HOURS_KEPT_DAYS * _DAY_MS  # Unix days are whole multiples
    kept = [c for c in hours if c.timestamp_ms >= first and len(c.value) == 8]
    per_hour: dict[int, int] = {}
    for cell, n in zip(kept, _counts(kept)):
        ms = cell.timestamp_ms
        per_hour[ms] = per_hour.get(ms, 0) + n
    times = _TIMES
    # tuple.__new__ is what HourUse(start, posts) calls, minus a Python frame per hour (half the cost)
    return tuple([_new_tuple(HourUse, (times.get(ms) or _shared_time(ms), per_hour[ms])) for ms in sorted(per_hour)])


_new_tuple = tuple.__new__


def _counts(cells: Sequence[Cell]) -> tuple[int, ...]:
    """The int64 BE counts of 8-byte cells, decoded by one struct call (not one per cell)."""
    return struct.unpack(f">{len(cells)}q", b"".join([c.value for c in cells]))


# Every tag's row has cells at the same hour starts and day columns, so the page read converts them
# once per process, not once per cell (building a datetime / date was most of hour_uses' and
# day_uses' time). Bounded: cleared when full (a cache miss only costs the conversion).
_CACHE_MAX = 20_000
_TIMES: dict[int, dt.datetime] = {}
_DAY_COLUMNS: dict[bytes, "DayColumn | None"] = {}


def _shared_time(ms: int) -> dt.datetime:
    ts = _TIMES.get(ms)
    if ts is None:
        if len(_TIMES) >= _CACHE_MAX:
            _TIMES.clear()
        ts = _TIMES[ms] = from_millis(ms)
    return ts


def _shared_day_column(qualifier: bytes) -> "DayColumn | None":
    try:
        return _DAY_COLUMNS[qualifier]
    except KeyError:
        if len(_DAY_COLUMNS) >= _CACHE_MAX:
            _DAY_COLUMNS.clear()
        col = _DAY_COLUMNS[qualifier] = parse_day_column(qualifier)
        return col


def day_uses(cells: Iterable[tuple[bytes, Cell]]) -> tuple[DayUse, ...]:
    """The newest ``p.``/``a.`` cell of each day, oldest day first; undecodable cells are skipped."""
    newest: dict[bytes, Cell] = {}  # by qualifier: a bytes key hashes once, a DayColumn on every lookup
    for qualifier, cell in cells:
        if len(cell.value) == 8:
            seen = newest.get(qualifier)
            if seen is None or cell.timestamp_ms > seen.timestamp_ms:
                newest[qualifier] = cell
    posts: dict[dt.date, int] = {}
    accounts: dict[dt.date, int] = {}
    for qualifier, n in zip(newest, _counts(list(newest.values()))):
        col = _shared_day_column(qualifier)
        if col is not None:
            (posts if col.kind == "p" else accounts)[col.day] = n
    return tuple(DayUse(day, posts.get(day, 0), accounts.get(day)) for day in sorted(posts.keys() | accounts.keys()))
