"""Trending tags: the score, per tag, and the ranked list (pure: no I/O, no Beam). docs/TRENDS.md
has the formula beside Mastodon's ``Trends::Tags``; this module is the one place it lives.

Per tag, evaluated every minute at ``now`` (event time, a minute boundary):

- observed ``O``: distinct accounts that used the tag in the trailing hour ``(now − 1 h, now]``
  (minute granularity; one account counts once however many posts it makes);
- expected ``E``: the tag's mean distinct accounts per hour over the 24 whole hours before the
  observation window, at least 1 (hours with no use count as 0);
- score ``(O − E)² / E`` when ``O ≥ FLOOR`` and ``O > E``, else 0 (Mastodon's formula);
- the published score is a peak that decays with a 4 h half-life: a new score above the decayed
  peak becomes the peak; a peak decayed below ``MIN_SCORE`` or older than 2 days is cleared.

Nothing depends on the calendar day, so nothing resets at midnight. The expected value comes from
the tag's own hour history: after a relaunch (empty state) the job seeds it from the stored
``counts:u.<gen>`` cells of every generation (:func:`seed`), so a tag with a history does not look new.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
WINDOW_MS = HOUR_MS  # observation window: the trailing hour
BASELINE_HOURS = 24  # expected: mean hourly accounts over this many hours before the window
HOUR_CLOSE_MS = HOUR_MS  # an hour's distinct count is final this long after it ends (late data)
# A minute's pane arriving this long behind the watermark changes nothing for a tag evaluated on
# schedule: it is out of the observed window and its hour is final (``add``). The job's minute
# windows allow no more lateness (their state would only cost memory).
USEFUL_LATENESS_MS = WINDOW_MS + HOUR_CLOSE_MS
FLOOR = 5  # distinct accounts a tag needs in the window to score at all (Mastodon's threshold)
HALF_LIFE_MS = 4 * HOUR_MS  # of the peak score
CLEAR_AFTER_MS = 2 * 24 * HOUR_MS  # a peak older than this is cleared (Mastodon's cooldown)
MIN_SCORE = 1.0  # a decayed peak below this is cleared: the tag leaves the list
CANDIDATES = 60  # best scores the ranking step reviews (flags, history) each minute
LIST_MAX = 40  # entries written to the trends row after review

ALLOWED, REJECTED, PENDING = "allowed", "rejected", "pending"
REVIEW_STATES = (ALLOWED, REJECTED, PENDING)


def account_id(user_id: str) -> int:
    """A 64-bit hash of the account: the state holds 8-byte ints, not strings. Two accounts collide
    with probability ~n²/2⁶⁵ (n = 10⁶ accounts in an hour: ~3·10⁻⁸), the only error of the count."""
    return int.from_bytes(hashlib.blake2b(user_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def minute_floor(ms: int) -> int:
    return ms - ms % MINUTE_MS


def hour_floor(ms: int) -> int:
    return ms - ms % HOUR_MS


def raw_score(observed: int, expected: float) -> float:
    """Mastodon's ``Trends::Tags#calculate_scores`` rule, with its floor."""
    expected = max(expected, 1.0)
    if observed < FLOOR or observed <= expected:
        return 0.0
    return (observed - expected) ** 2 / expected


def decayed(peak: float, peak_at: int, now: int) -> float:
    if peak <= 0:
        return 0.0
    return peak * 0.5 ** ((now - peak_at) / HALF_LIFE_MS)


@dataclass(slots=True)
class TagState:
    """One tag's trend state in the streaming job (per key; pickled into Beam state)."""

    seen: dict[int, int] = field(default_factory=dict)  # account → last minute seen (ms), in the window
    uses: dict[int, int] = field(default_factory=dict)  # minute (ms) → posts, in the window
    open_hours: dict[int, set] = field(default_factory=dict)  # hour (ms) → accounts, not yet final
    hours: dict[int, int] = field(default_factory=dict)  # hour (ms) → distinct accounts, final or seeded
    peak: float = 0.0
    peak_at: int = 0
    display: str | None = None
    listed: bool = False  # in the last list emitted (a tag that leaves sends one zero entry)
    seeded: bool = False
    evaluated_at: int = 0  # the last evaluation's now (ms)
    next_evaluation: int = 0  # when the job's timer evaluates this tag next (ms)

    def alive(self) -> bool:
        return bool(self.seen or self.uses or self.open_hours or self.peak > 0)


class Evaluation(NamedTuple):
    score: float  # the decayed peak (0: not trending)
    accounts: int  # O
    uses: int  # posts in the window
    expected: float  # E


def add(state: TagState, minute_ms: int, accounts: Iterable[int], posts: int, display: str | None = None) -> None:
    """One minute's accounts and posts of the tag (a pane of the minute windows; late panes too)."""
    minute_ms = minute_floor(minute_ms)
    accounts = list(accounts)
    hour = hour_floor(minute_ms)
    if hour + HOUR_MS + HOUR_CLOSE_MS > state.evaluated_at:  # later than that, the hour is final
        state.open_hours.setdefault(hour, set()).update(accounts)
    seen = state.seen
    for a in accounts:
        if seen.get(a, -1) < minute_ms:
            seen[a] = minute_ms
    state.uses[minute_ms] = state.uses.get(minute_ms, 0) + posts
    if display and not state.display:
        state.display = display


def seed(state: TagState, stored_hours: Mapping[int, int]) -> None:
    """Hour accounts read from the table (every generation's ``counts:u.`` cells, max per hour):
    the baseline a relaunched job did not see. An hour this job counts too keeps the larger figure."""
    for hour, n in stored_hours.items():
        state.hours[hour] = max(state.hours.get(hour, 0), n)
    state.seeded = True


def expected(state: TagState, now: int) -> float:
    base_end = hour_floor(now - WINDOW_MS)
    total = 0
    for i in range(1, BASELINE_HOURS + 1):
        hour = base_end - i * HOUR_MS
        total += max(state.hours.get(hour, 0), len(state.open_hours.get(hour, ())))
    return max(total / BASELINE_HOURS, 1.0)


def evaluate(state: TagState, now: int) -> Evaluation:
    """Advance the tag's state to ``now`` (prune, close hours, update the peak) and score it."""
    state.evaluated_at = max(state.evaluated_at, now)
    start = now - WINDOW_MS
    state.seen = {a: m for a, m in state.seen.items() if m >= start}
    state.uses = {m: n for m, n in state.uses.items() if m >= start}
    for hour in [h for h in state.open_hours if h + HOUR_MS + HOUR_CLOSE_MS <= now]:
        state.hours[hour] = max(state.hours.get(hour, 0), len(state.open_hours.pop(hour)))
    oldest = hour_floor(start) - (BASELINE_HOURS + 1) * HOUR_MS
    state.hours = {h: n for h, n in state.hours.items() if h >= oldest}
    # only minutes before now: a timer catching up behind the data must not count later minutes
    observed = sum(1 for m in state.seen.values() if m < now)
    uses = sum(n for m, n in state.uses.items() if m < now)
    exp = expected(state, now)
    score = raw_score(observed, exp)
    current = decayed(state.peak, state.peak_at, now)
    if score > current:
        state.peak, state.peak_at, current = score, now, score
    if current < MIN_SCORE or now - state.peak_at > CLEAR_AFTER_MS:
        state.peak, state.peak_at, current = 0.0, 0, 0.0
    return Evaluation(current, observed, uses, exp)


# ---- the ranked list ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrendDay:
    day: dt.date
    uses: int
    accounts: int


@dataclass(frozen=True, slots=True)
class TrendEntry:
    tag: str  # the key (normalised)
    name: str  # display spelling
    score: float
    accounts: int  # distinct accounts in the trailing hour
    uses: int  # posts in the trailing hour
    review: str = PENDING
    history: tuple[TrendDay, ...] = ()  # newest first, as the tag page's 7 days


def rank_key(entry: TrendEntry) -> tuple:
    """Best first: score, then accounts, then the tag (a total order: ties rank the same everywhere)."""
    return (-entry.score, -entry.accounts, entry.tag)


def top(entries: Iterable[TrendEntry], n: int = CANDIDATES) -> list[TrendEntry]:
    """The best ``n`` scoring entries, one per tag (its best: a minute's pane holds one evaluation
    per tag, but a list must never name a tag twice whatever reaches it)."""
    best: dict[str, TrendEntry] = {}
    for e in entries:
        if e.score > 0 and (e.tag not in best or rank_key(e) < rank_key(best[e.tag])):
            best[e.tag] = e
    return sorted(best.values(), key=rank_key)[:n]


def review_state(hidden: bool, trend: str) -> str | None:
    """What the list says about a tag's review, or None when it must not be listed at all."""
    if hidden or trend == REJECTED:
        return None
    return ALLOWED if trend == ALLOWED else PENDING


def shown(entry: TrendEntry, without_review: bool) -> bool:
    """Whether a listed entry trends for visitors: allowed, or pending on a deployment that trends
    without review."""
    return entry.review == ALLOWED or (without_review and entry.review == PENDING)


@dataclass(frozen=True, slots=True)
class TrendList:
    computed_at: dt.datetime | None
    entries: tuple[TrendEntry, ...] = ()


def encode_trends(computed_at: dt.datetime, entries: Sequence[TrendEntry]) -> bytes:
    return json.dumps({
        "computed_at": computed_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "entries": [{"tag": e.tag, "name": e.name, "score": round(e.score, 3), "accounts": e.accounts,
                     "uses": e.uses, "review": e.review,
                     "history": [{"day": d.day.isoformat(), "uses": d.uses, "accounts": d.accounts}
                                 for d in e.history]}
                    for e in entries[:LIST_MAX]],
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_trends(value: bytes) -> TrendList:
    """Total: anything undecodable → an empty list; malformed entries are dropped."""
    try:
        raw = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return TrendList(None)
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
        return TrendList(None)
    try:
        at = dt.datetime.fromisoformat(raw.get("computed_at"))
    except (TypeError, ValueError):
        at = None
    entries = []
    for e in raw["entries"][:LIST_MAX]:
        try:
            history = tuple(TrendDay(dt.date.fromisoformat(d["day"]), _count(d["uses"]), _count(d["accounts"]))
                            for d in e.get("history", ()))
            if e["review"] not in REVIEW_STATES or not isinstance(e["tag"], str) or not e["tag"]:
                continue
            entries.append(TrendEntry(e["tag"], str(e.get("name") or e["tag"]), float(e["score"]),
                                      _count(e["accounts"]), _count(e["uses"]), e["review"], history))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return TrendList(at, tuple(entries))


def _count(x: object) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < 0:
        raise ValueError(f"a count, got {x!r}")
    return x
