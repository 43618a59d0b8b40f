"""The ``post_state`` table (DESIGN.md "The post_state table"): one row per post, what the
reconciliation applied for it, and the run records. Pure: encode/decode, the winner order, the
per-tag deltas of a changed winner, and which range a run really reads.

Row key = the post_id (UTF-8). One family, ``s``, GC = the last ``STATE_VERSIONS_KEPT`` versions of each column:

| row            | column          | cell timestamp | value                                              |
|----------------|-----------------|----------------|----------------------------------------------------|
| ``<post_id>``  | ``w``           | the run's M    | the winning event's order key + its distinct tags |
| ``\\x00runs``  | ``run.<as_of>`` | the run's M    | the run record (mode, arrival range, finished at)  |

**What a run reads as applied** (:class:`Priors`): the newest cell written at the midnight of a
RECORDED run, up to the latest recorded run before M — never "the newest cell before M". A run that
died after writing part of its cells left cells at its midnight (and no record): they are never read
as applied, whichever night runs next, and the next successful run supersedes them. The versions a
run needs are therefore its last recorded run's, under every version that unrecorded attempts and
its own first attempt wrote since: ``STATE_VERSIONS_KEPT`` = 5 keeps them through three midnights
in a row that failed after writing (a retry of the same night rewrites the same cells, no new
version); beyond that, run a full rebuild. The run row's key starts with NUL, which no post_id can
(``hashtags.messages`` rejects control characters in ids).

**The winner order** (:func:`order_of`, the ONE helper for it): event time, then ``deleted``
beats ``published``, then the event_id (missing = ""), then a digest of the event's fields. The
digest replaces the former last tie-break "the JSON line" so the order can be stored in 12 bytes;
two events tied up to there that still differ are the same post at the same instant under one
event_id (a producer bug): either may win, but always the same one, everywhere.

A candidate travels through the job's shuffle as a plain tuple of primitives (Beam's
FastPrimitivesCoder encodes it in ~1.5 µs; a NamedTuple or dataclass falls back to pickling, ~20x
the cost), laid out as ``CANDIDATE_FIELDS``; its first four fields are its order key. It carries
the event's distinct tag KEYS (extracted and normalised before the shuffle), never its caption or
image: what is grouped per post is a few dozen bytes, not a post.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

from hashtags import layout, planning
from hashtags.layout import GcRule
from hashtags.messages import DELETED, PostEvent, post_event_from_fields

FAMILY = "s"
COL_WINNER = b"w"
RUN_ROW = b"\x00runs"
RUN_PREFIX = b"run."
STATE_VERSIONS_KEPT = 5  # see "What a run reads as applied"
COLUMN_FAMILIES: dict[str, GcRule] = {FAMILY: GcRule(max_versions=STATE_VERSIONS_KEPT)}
_DIGEST_BYTES = 12
_STATE_FORMAT = 1


def row_key(post_id: str) -> bytes:
    return post_id.encode("utf-8")


# ---- the winner order ----------------------------------------------------------------------------
class OrderKey(NamedTuple):
    event_time_us: int  # µs since the epoch
    deleted: int  # 1 = deleted: beats a publish at the same instant
    event_id: str  # "" when the event has none
    digest: bytes  # of the event's fields: the last tie-break


Candidate = tuple
"""(event_time_us, deleted, event_id or "", digest, user_id, tags): ``tags`` = the event's distinct
tag keys (``PostEvent.tags``, sorted), also for a delete (what a re-delivered delete touched)."""
CANDIDATE_FIELDS = ("event_time_us", "deleted", "order_event_id", "digest", "user_id", "tags")


def micros(t: dt.datetime) -> int:
    """µs since the epoch (the order key's time)."""
    d = t - layout.EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _digest(event: str, post_id: str, user_id: str, caption: str, image_url, event_time_us: int, event_id,
            hashtags) -> bytes:
    # repr of str/int/None/tuple is deterministic across processes and runs (unlike hash()).
    fields = (event, post_id, user_id, caption, image_url, event_time_us, event_id, hashtags)
    return hashlib.blake2b(repr(fields).encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES).digest()


def candidate_from_fields(f: tuple) -> Candidate:
    """A candidate from a ``hashtags.messages.parse_post_event_fields`` tuple."""
    event, post_id, user_id, caption, image_url, event_time, event_id, hashtags = f
    us = micros(event_time)
    deleted = 1 if event == DELETED else 0
    tags = tuple(sorted(key for key, _ in post_event_from_fields(f).tags()))
    return (us, deleted, event_id or "", _digest(event, post_id, user_id, caption, image_url, us, event_id, hashtags),
            user_id, tags)


def candidate(e: PostEvent) -> Candidate:
    return candidate_from_fields((e.event, e.post_id, e.user_id, e.caption, e.image_url, e.event_time,
                                  e.event_id, e.hashtags))


def order_of(c: Candidate | OrderKey) -> tuple:
    """THE winner order: the larger wins (see the module doc)."""
    return tuple(c[:4])


def later(a: Candidate | None, b: Candidate | None) -> Candidate | None:
    """The winner of two candidates of one post (either may be None). Associative, commutative."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a[:4] >= b[:4] else b


def event_time_us(c: Candidate) -> int:
    return c[0]


# ---- a post's state --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PostState:
    """The winning event applied for a post: its order key, and the distinct tag keys it counts
    for (the shared tag rule, ``PostEvent.tags``; empty when the winner is a delete)."""
    order: OrderKey
    tags: tuple[str, ...]

    @property
    def published(self) -> bool:
        return not self.order.deleted


def state_of(post_id: str, c: Candidate) -> PostState:
    order = OrderKey(*c[:4])
    if order.deleted:
        return PostState(order, ())
    return PostState(order, tuple(c[5]))


def changed(old: PostState | None, new: PostState) -> bool:
    """Does ``new`` (the latest candidate) replace what was applied? Never for an older or the same event."""
    return old is None or order_of(new.order) > order_of(old.order)


def tag_deltas(old: PostState | None, new: PostState) -> Iterator[tuple[str, int]]:
    """The count change of a post whose winner went from ``old`` to ``new``: −1 for each of the old
    winner's tags if it was published, +1 for each of the new winner's if it is."""
    if old is not None and old.published:
        for key in old.tags:
            yield key, -1
    if new.published:
        for key in new.tags:
            yield key, 1


def encode_state(s: PostState) -> bytes:
    o = s.order
    return json.dumps([_STATE_FORMAT, o.event_time_us, o.deleted, o.event_id, o.digest.hex(), list(s.tags)],
                      ensure_ascii=True, separators=(",", ":")).encode("ascii")


def decode_state(value: bytes) -> PostState:
    raw = json.loads(value.decode("ascii"))
    if not isinstance(raw, list) or len(raw) != 6 or raw[0] != _STATE_FORMAT:
        raise ValueError(f"not a post state (format {_STATE_FORMAT}): {value[:60]!r}")
    _, us, deleted, event_id, digest, tags = raw
    return PostState(OrderKey(int(us), int(deleted), str(event_id), bytes.fromhex(digest)),
                     tuple(str(t) for t in tags))


# ---- run records -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run that finished every write: written last, at its as_of."""
    as_of: dt.date
    mode: str
    arrived_from: dt.date | None  # None = from the first archived day
    arrived_to: dt.date
    finished_at: dt.datetime

    def last_run(self) -> planning.LastRun:
        return planning.LastRun(self.as_of, self.arrived_to)


def run_column(as_of: dt.date) -> bytes:
    return RUN_PREFIX + as_of.isoformat().encode("ascii")


def encode_run(r: RunRecord) -> bytes:
    return json.dumps({"as_of": r.as_of.isoformat(), "mode": r.mode,
                       "arrived_from": r.arrived_from.isoformat() if r.arrived_from else None,
                       "arrived_to": r.arrived_to.isoformat(),
                       "finished_at": r.finished_at.astimezone(layout.UTC).isoformat()},
                      sort_keys=True, separators=(",", ":")).encode("ascii")


def decode_run(value: bytes) -> RunRecord:
    d = json.loads(value.decode("ascii"))
    return RunRecord(dt.date.fromisoformat(d["as_of"]), d["mode"],
                     dt.date.fromisoformat(d["arrived_from"]) if d["arrived_from"] else None,
                     dt.date.fromisoformat(d["arrived_to"]), dt.datetime.fromisoformat(d["finished_at"]))


def latest_run(records: Iterable[RunRecord], before: dt.date | None = None) -> RunRecord | None:
    """The run with the latest as_of (before ``before``, if given)."""
    runs = [r for r in records if before is None or r.as_of < before]
    return max(runs, key=lambda r: r.as_of, default=None)


@dataclass(frozen=True, slots=True)
class Priors:
    """What a run at M reads as applied (module doc): cells at the midnight of a recorded run, up to
    ``last`` (the latest recorded run before M; None: nothing applied yet, e.g. a full rebuild)."""
    last: dt.date | None = None
    recorded_ms: frozenset[int] = frozenset()  # the recorded runs' midnights up to ``last``, ms

    @classmethod
    def of(cls, records: Iterable[RunRecord], before: dt.date) -> "Priors":
        last = latest_run(records, before=before)
        if last is None:
            return cls()
        return cls(last.as_of, frozenset(layout.to_millis(layout.midnight_utc(r.as_of))
                                          for r in records if r.as_of <= last.as_of))

    @property
    def end(self) -> dt.datetime:
        """The exclusive end of the cell timestamps worth reading: just after ``last``'s midnight."""
        if self.last is None:
            return layout.EPOCH
        return layout.midnight_utc(self.last) + dt.timedelta(milliseconds=1)

    def applied(self, timestamp_ms: int) -> bool:
        return timestamp_ms in self.recorded_ms

    def newest_applied(self, cells: Iterable, timestamp_ms=lambda c: c.timestamp_ms):
        """The newest of ``cells`` written by a recorded run (None if none)."""
        return max((c for c in cells if timestamp_ms(c) in self.recorded_ms), key=timestamp_ms, default=None)


# ---- what a run really covers ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Resolved:
    """The plan a run executes, whether it starts from empty prior state (a full rebuild), and what
    it reads as applied (empty for a full rebuild)."""
    plan: planning.RunPlan
    fresh: bool
    note: str = ""
    priors: Priors = Priors()


class PlanRefused(ValueError):
    """The run must not go ahead (exit 2): it would write counts that are not exact."""


def resolve(plan: planning.RunPlan, records: Iterable[RunRecord]) -> Resolved:
    """Adjust a requested plan to the runs already recorded, so that every run stays exact:

    * a run at M when a later midnight has a record is refused: the version before M that it would
      read may be collected already (a few kept), and its base would be hidden by the later one;
    * a run at a midnight that a run already wrote reads the union (hull) of both arrival ranges
      (its base at M is rebuilt from the base before M, so it must re-apply what that run applied;
      re-reading more days is harmless). After a full rebuild at M, a run at M is a full rebuild;
    * with no run recorded before M there is no prior state to apply deltas to: a nightly is then a
      full rebuild (the first run), a reapply is refused.
    """
    records = list(records)
    m = plan.as_of
    later_runs = sorted(r.as_of for r in records if r.as_of > m)
    if later_runs:
        raise PlanRefused(f"a run as of {later_runs[-1]} is recorded, after {m}: a run must not go back "
                          "in time (a full rebuild at the latest midnight repairs everything)")
    notes = []
    same = next((r for r in records if r.as_of == m), None)
    if same is not None and plan.mode != planning.FULL_REBUILD:
        if same.mode == planning.FULL_REBUILD:
            plan = dataclasses.replace(plan, mode=planning.FULL_REBUILD, arrived_from=None,
                                       arrived_to=max(plan.arrived_to, same.arrived_to))
            notes.append(f"a full rebuild as of {m} is recorded: rerun as a full rebuild")
        else:
            start = None if plan.arrived_from is None or same.arrived_from is None else \
                min(plan.arrived_from, same.arrived_from)
            plan = dataclasses.replace(plan, arrived_from=start, arrived_to=max(plan.arrived_to, same.arrived_to))
            notes.append(f"a run as of {m} is recorded: reads the union of its arrival days and these")
    if plan.mode == planning.FULL_REBUILD:
        return Resolved(plan, True, "; ".join(notes))
    priors = Priors.of(records, before=m)
    if priors.last is None:
        if plan.mode == planning.REAPPLY:
            raise PlanRefused(f"no run is recorded before {m}: there is no state to re-apply days onto "
                              "(run a full rebuild first)")
        plan = dataclasses.replace(plan, mode=planning.FULL_REBUILD, arrived_from=None)
        notes.append(f"no run recorded before {m}: this first run is a full rebuild")
        return Resolved(plan, True, "; ".join(notes))
    return Resolved(plan, False, "; ".join(notes), priors)
