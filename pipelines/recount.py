"""The reconciliation job's graph (DESIGN.md "Reconciliation (incremental)"): the archived events of
some ARRIVAL days → per-post winners → changes against the per-post state → per-tag deltas → the
exact ``counts:base`` at M, the new post states at M, and the drift report. ``recount_main`` is the
thin main (plans the run, creates tables, launches the job; the job reports and records itself, 8).

For ``as_of`` = M (a UTC midnight) and the arrival days of the plan:

1. **Files**: the plan's ``arrived=YYYY-MM-DD`` patterns (``hashtags.archive.partition_glob``; the
   whole archive for a full rebuild) are matched ON THE WORKERS (``fileio.MatchAll``), filtered to
   the plan's days, spread (``Reshuffle``) and read one file per unit of work, fused with the parse
   (the streaming job's validation: ``hashtags.messages.parse_post_event_fields``, no future check).
2. **Winners**: per post, the latest event with event time < M (``hashtags.post_state.later``, THE
   order). The parse extracts each event's distinct tag keys, so a candidate is the order key, the
   user_id and the keys (never the caption); ``CombinePerKey`` by post_id holds ONE candidate per
   post (combiner lifting sends at most one per post and bundle through the shuffle). The parse
   also emits every event's tag keys: with the replaced states' tags, the tags the night touched.
3. **Changes**: each winner against the post's state as the RECORDED runs applied it
   (``hashtags.post_state.Priors``: the newest cell written at a recorded run's midnight, up to the
   last recorded run before M; ``BatchElements`` → one multi-key ``ReadRows`` per batch,
   ``hashtag_store.post_state.PostStateReader``); a full rebuild starts from empty state and skips
   the lookups. A post changes when its winner is later than that state.
4. **Deltas**: −1 for each tag of the old winner if it was published, +1 for each of the new one's
   (``hashtags.post_state.tag_deltas``; tags by the shared rule ``PostEvent.tags``), summed per tag
   by the streaming job's own combiner (``pipelines.transforms.TallyFn``).
5. **Rows**: a nightly reads the rows of the touched tags and of the tags with hour cells since the
   day before its last recorded run (keys only, ``hashtag_store.scan.CountRowsReader.pending_keys``),
   by batched multi-key point reads (``hashtag_store.scan.TagRowsReader``) → :class:`RowSnapshot`;
   never every row. A full rebuild reads every row (key ranges in parallel): it resets them all.
6. **Bases**: ``base@M = the recorded base + Σ deltas`` for every tag with a delta, every tag whose
   row has hour cells in [that base, M) (a streaming over-count is reset) and every tag whose newest
   base before M is a failed run's (superseded); a full rebuild
   writes Σ deltas for every counted tag and 0 for every other row with count cells. The drift
   report covers exactly these tags (shown vs exact). The bases wait behind the join
   (``CoGroupByKey``, a barrier), so the rows are read before any base is written.
7. **States**: the changed posts' new states at M.
7b. **Days** (the rule: hashtags/day_cells.py): ``days:p.<day>`` = the row's ``p.<day>`` as the
   recorded runs left it (read with the rows of step 5) + the changes' per-(tag, event day) deltas;
   ``days:a.<day>`` = distinct ``user_id`` of the published winners per (tag, event day), for the
   run's arrival days (with the nightly's one-day overlap, day X's value comes from the run that
   read partitions X and X+1: the run at X+2); both within the horizon (28 days), behind the same
   join as the bases.
7c. **Related tags** (the rule: hashtags/related.py; the graph: pipelines/related.py): a second,
   bounded read of the arrival days [M − 7 d, M − 1 d] (whatever the mode: never all history)
   through the same ``Winners`` → ``meta:related`` at M for every tag seen, without the hidden tags
   (``hidden``, read by the launcher from the tags' ``meta:flags``).
8. **Report, then record** (the job's LAST step, :class:`FinishRunFn`): behind ``WaitOn`` of every
   Bigtable write, one element writes ``<report>/drift-<as_of>.json`` and ``.md`` (the drift
   accumulator and the run's in-graph counts as side inputs) and then, unless a dry run, the run
   record. So the job reports and records itself on any runner: a Flex Template launcher only
   builds and submits the graph (it cannot wait for the job), and a job that failed in a write
   leaves neither a report nor a record.

Every read is "as the recorded runs applied it" and every write a SetCell at M, so a rerun computes
and writes the same cells: idempotent. A run that died halfway left cells at its M and no record:
no later run reads them as applied, whether the same night is rerun or the next night runs, and
the next successful run rewrites every such base and day cell it reads (docs/RECONCILIATION.md).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from typing import Iterable, Iterator, NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from hashtag_store import mutations
from hashtags import archive, day_cells, layout, related
from hashtags import post_state as ps
from hashtags.day_cells import DayCells, DaySpan
from hashtags.layout import Cell
from hashtags.messages import Rejected, parse_post_event_fields
from hashtags.planning import RunPlan, parse_day
from pipelines import drift
from pipelines.drift import DEFAULT_LIST_LIMIT, DEFAULT_WORST_N, DriftAccumulator, TagDrift
from pipelines.related import RelatedRowFn, RelatedTags
from pipelines.transforms import TallyFn

NAMESPACE = "recount"
_DELETED = ps.CANDIDATE_FIELDS.index("deleted")
_USER_ID = ps.CANDIDATE_FIELDS.index("user_id")
_TAGS = ps.CANDIDATE_FIELDS.index("tags")
LOOKUP_BATCH = (100, 500)  # posts per state lookup RPC (min, max)


def as_of_time(day: str | dt.date) -> dt.datetime:
    return layout.midnight_utc(parse_day(day))


# ---- archive files (pure) --------------------------------------------------------------------
def file_patterns(root: str, plan: RunPlan) -> list[str]:
    """The patterns to match for a plan: one day's patterns per arrival day, or the whole archive
    when the range is open at the start (a full rebuild, a first run)."""
    days = plan.arrival_days()
    if days is None:
        return archive.partition_glob(root)
    return [p for d in days for p in archive.partition_glob(root, d)]


def in_plan(path: str, plan: RunPlan) -> bool:
    """An archive file of one of the plan's arrival days (the whole-archive glob matches them all)."""
    day = archive.partition_day(path)
    return (archive.is_archive_file(path) and day is not None
            and (plan.arrived_from is None or day >= plan.arrived_from)
            and (plan.arrived_to is None or day <= plan.arrived_to))


class ArchiveFiles(beam.PTransform):
    """The pipeline's root → the paths of the plan's archive files, matched on the workers and
    spread (one file per unit of work downstream)."""

    def __init__(self, root: str, plan: RunPlan):
        super().__init__()
        self.root, self.plan = root, plan

    def expand(self, pbegin):
        plan = self.plan
        return (pbegin
                | "Patterns" >> beam.Create(file_patterns(self.root, plan))
                | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
                | "PlannedDays" >> beam.Filter(lambda m: in_plan(m.path, plan))
                | "Paths" >> beam.Map(lambda m: m.path)
                | "Spread" >> beam.Reshuffle())


def related_plan(plan: RunPlan) -> RunPlan:
    """The related-tags branch's read: the window's arrival days (hashtags.related.window)."""
    w = related.window(plan.as_of)
    return dataclasses.replace(plan, arrived_from=w.first_arrival, arrived_to=w.last_arrival)


# ---- 1-2: read, parse, winners ---------------------------------------------------------------
COUNTS = "counts"  # the tagged output / side input of the run's in-graph counts: (name, n) pairs
TAGS = "tags"  # KeyedEventsFn's tagged output: the tag keys of every event before M (the touched tags)


class _Tally:
    """Events of one unit of work by outcome (counted in plain ints, reported once per unit)."""

    __slots__ = ("rejected", "kept", "later")

    def __init__(self):
        self.rejected = self.kept = self.later = 0


class KeyedEventsFn(beam.DoFn):
    """Archive line → (post_id, candidate) for events with event time before M, and each of its tag
    keys to the ``TAGS`` output. Parse, extract, filter and pack in one step: that is the per-event
    cost of the job, and what leaves it is keys, never captions."""

    def __init__(self, as_of: dt.datetime):
        self._as_of_us = ps.micros(as_of)
        self._valid = Metrics.counter("hashtags", "post_events_valid")
        self._rejected = Metrics.counter("hashtags", "post_events_rejected")
        self._kept = Metrics.counter(NAMESPACE, "events_before_as_of")
        self._skipped = Metrics.counter(NAMESPACE, "events_at_or_after_as_of")

    def process(self, line):
        tally = _Tally()
        yield from self.keyed(line, tally)
        self._report(tally)

    def keyed(self, line, tally: _Tally):
        f = parse_post_event_fields(line)
        if type(f) is Rejected:
            tally.rejected += 1
            return
        c = ps.candidate_from_fields(f)
        if ps.event_time_us(c) < self._as_of_us:
            tally.kept += 1
            yield f[1], c
            for key in c[_TAGS]:
                yield pvalue.TaggedOutput(TAGS, key)
        else:
            tally.later += 1

    def _report(self, tally: _Tally) -> None:
        """The unit's tally as metrics (the Dataflow UI) — the report counts in-graph instead."""
        self._valid.inc(tally.kept + tally.later)
        self._rejected.inc(tally.rejected)
        self._kept.inc(tally.kept)
        self._skipped.inc(tally.later)


class KeyedEventsOfFilesFn(KeyedEventsFn):
    """An archive file (a path or FileMetadata; local or gs://, gzip from the extension) →
    ``KeyedEventsFn`` of each non-empty line. A plain buffered ``for line in file`` (Beam's text
    record reader costs ~4 µs of Python per line). A file is one unit of work: the streaming job
    cuts the archive into files bounded by time and size."""

    def __init__(self, as_of: dt.datetime):
        super().__init__(as_of)
        self._files = Metrics.counter(NAMESPACE, "archive_files_read")

    def process(self, path):
        """Also emits, once per file, the file's counts to the ``COUNTS`` output: the report's
        figures are counted in-graph (a failed bundle's outputs are discarded with it, so they
        count each file once), since a Flex launch cannot read the job's metrics."""
        if isinstance(path, FileMetadata):
            path = path.path
        self._files.inc()
        keyed, tally = self.keyed, _Tally()
        with open_archive_file(path) as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if line:
                    yield from keyed(line, tally)
        self._report(tally)
        for name, n in (("archive_files", 1), ("events_read", tally.kept + tally.later),
                        ("events_rejected", tally.rejected), ("events_before_as_of", tally.kept)):
            yield pvalue.TaggedOutput(COUNTS, (name, n))


def open_archive_file(path: str):
    """A binary, line-iterable reader of an archive file. Gzip through Python's ``gzip`` over the raw
    stream: Beam's ``CompressedFile`` (compression AUTO) is not iterable."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw


class LatestFn(beam.CombineFn):
    """The winner of one post's candidates (``hashtags.post_state.later``, a total order, so the
    result does not depend on the split). Keyed by post_id: an accumulator is ONE candidate, and
    combiner lifting sends at most one per post and bundle through the shuffle."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, c):
        return ps.later(acc, c)

    def merge_accumulators(self, accs):
        out = None
        for acc in accs:
            out = ps.later(out, acc)
        return out

    def extract_output(self, acc):
        return acc


class ParseEvents(beam.PTransform):
    """Archive file paths (or FileMetadata) → a dict of PCollections: ``events`` (post_id, candidate)
    of every event before M, ``tags`` (the tag keys of those events, repeats included: what the
    night touched) and ``counts`` (name, n): archive files, events read / rejected / before M."""

    def __init__(self, as_of: dt.datetime):
        super().__init__()
        self.as_of = as_of

    def expand(self, files):
        parsed = files | "ParseBeforeAsOf" >> beam.ParDo(
            KeyedEventsOfFilesFn(self.as_of)).with_outputs(COUNTS, TAGS, main="events")
        return {"events": parsed.events, "tags": parsed[TAGS], "counts": parsed[COUNTS]}


class Winners(beam.PTransform):
    """Archive file paths → (post_id, winning candidate before M): ``ParseEvents`` then the latest
    per post."""

    def __init__(self, as_of: dt.datetime):
        super().__init__()
        self.as_of = as_of

    def expand(self, files):
        return (files | "Parse" >> ParseEvents(self.as_of))["events"] | "LatestPerPost" >> beam.CombinePerKey(LatestFn())


# ---- 3-4: changes and deltas ----------------------------------------------------------------
class PostChange(NamedTuple):
    post_id: str
    old: ps.PostState | None  # the state before M (None: none, or a full rebuild)
    new: ps.PostState


class _ChangeCounters:
    def __init__(self):
        self.posts = Metrics.counter(NAMESPACE, "posts")
        self.changed = Metrics.counter(NAMESPACE, "posts_changed")


class FreshChangesFn(beam.DoFn):
    """A full rebuild: every winner is a change from empty state."""

    def __init__(self):
        self._n = _ChangeCounters()

    def process(self, kv):
        post_id, c = kv
        self._n.posts.inc()
        self._n.changed.inc()
        yield PostChange(post_id, None, ps.state_of(post_id, c))


class PriorStateChangesFn(beam.DoFn):
    """A batch of (post_id, winner) → the posts whose winner is later than their applied state:
    ONE multi-key read per batch (``hashtag_store.post_state.PostStateReader``)."""

    def __init__(self, tables: "Tables", priors: ps.Priors):
        self._tables, self._priors = tables, priors
        self._reader = None
        self._n = _ChangeCounters()
        self._lookups = Metrics.counter(NAMESPACE, "state_lookup_rpcs")
        self._found = Metrics.counter(NAMESPACE, "posts_with_state")

    def setup(self):
        from hashtag_store.post_state import PostStateReader

        t = self._tables
        self._reader = PostStateReader(t.project, t.instance, t.post_state, self._priors, app_profile=t.app_profile)

    def process(self, batch):
        prior = self._reader.read_states([post_id for post_id, _ in batch])
        self._lookups.inc()
        self._found.inc(len(prior))
        self._n.posts.inc(len(batch))
        for post_id, c in batch:
            old = prior.get(post_id)
            if old is not None and ps.order_of(c) <= ps.order_of(old.order):
                continue  # a duplicate or an older event: nothing changes
            self._n.changed.inc()
            yield PostChange(post_id, old, ps.state_of(post_id, c))

    def teardown(self):
        if self._reader is not None:
            self._reader.close()


class Changes(beam.PTransform):
    """(post_id, winner) → PostChange for every post whose winner is later than its state as the
    recorded runs applied it (``priors``; ``fresh``: from empty state, no lookups). ``counts``: as
    ``Winners``' (state lookup RPCs = batches)."""

    def __init__(self, priors: ps.Priors, *, fresh: bool, tables: "Tables | None" = None,
                 counts: list | None = None):
        super().__init__()
        self.priors, self.fresh, self.tables, self.counts = priors, fresh, tables, counts

    def expand(self, winners):
        if self.fresh:
            return winners | "FromEmptyState" >> beam.ParDo(FreshChangesFn())
        t = self.tables
        batches = winners | "Batch" >> beam.BatchElements(min_batch_size=LOOKUP_BATCH[0],
                                                           max_batch_size=LOOKUP_BATCH[1])
        if self.counts is not None:
            self.counts.append(batches | "CountLookups" >> beam.Map(lambda _: ("state_lookup_rpcs", 1)))
        return batches | "AgainstPriorState" >> beam.ParDo(PriorStateChangesFn(t, self.priors))


_NO_SPELLING = float("inf")


def change_deltas(change: PostChange) -> Iterator[tuple[str, tuple[int, float, None]]]:
    """A change's per-tag deltas in ``TallyFn``'s input form (no spelling: bases carry none)."""
    for key, d in ps.tag_deltas(change.old, change.new):
        yield key, (d, _NO_SPELLING, None)


class SumTagDeltas(beam.PTransform):
    """PostChange → (key, Tally): Σ deltas per tag, with the streaming job's combiner."""

    def expand(self, changes):
        return (changes
                | "TagDeltas" >> beam.FlatMap(change_deltas)
                | "SumPerTag" >> beam.CombinePerKey(TallyFn()))


# ---- 7b: per-day cells (hashtags/day_cells.py) ------------------------------------------------


def change_day_deltas(change: PostChange, days: DaySpan) -> Iterator[tuple[tuple[str, int], int]]:
    """A change's ((tag, event day), ±1) within ``days`` (the horizon)."""
    for key, day, d in day_cells.day_deltas(change.old, change.new):
        if day in days:
            yield (key, day), d


def _by_tag(tag_day, n):
    key, day = tag_day
    return key, (day, n)


class SumDayDeltas(beam.PTransform):
    """PostChange → (key, (day, Σ deltas)) for every (tag, event day) in ``days`` a change touches."""

    def __init__(self, days: DaySpan):
        super().__init__()
        self.days = days

    def expand(self, changes):
        return (changes
                | "DayDeltas" >> beam.FlatMap(change_day_deltas, self.days)
                | "SumPerTagDay" >> beam.CombinePerKey(sum)
                | "ByTag" >> beam.MapTuple(_by_tag))


def winner_accounts(kv, days: DaySpan) -> Iterator[tuple[tuple[str, int], str]]:
    """(post_id, winner) → ((tag, event day), user_id) of a published winner of one of ``days``."""
    post_id, c = kv
    if c[_DELETED]:
        return
    day = day_cells.event_day(ps.event_time_us(c))
    if day in days:
        user_id = c[_USER_ID]
        for key in ps.state_of(post_id, c).tags:
            yield (key, day), user_id


class DayAccounts(beam.PTransform):
    """(post_id, winner) → (key, (day, distinct accounts)) for the days in ``days``: a ``Distinct``
    of (tag, day, user) and a count per (tag, day), both combiner-lifted (no set of a big tag's
    accounts is ever held in one accumulator)."""

    def __init__(self, days: DaySpan):
        super().__init__()
        self.days = days

    def expand(self, winners):
        return (winners
                | "TagDayAccounts" >> beam.FlatMap(winner_accounts, self.days)
                | "DistinctAccounts" >> beam.Distinct()
                | "TagDays" >> beam.Keys()
                | "AccountsPerTagDay" >> beam.combiners.Count.PerElement()
                | "ByTag" >> beam.MapTuple(_by_tag))


# ---- 5: the table's rows ---------------------------------------------------------------------
class RowSnapshot(NamedTuple):
    """What one row of the ``hashtags`` table holds, seen from a run at M."""

    shown: int  # the page's total now (newest base + hour cells at/after it)
    base_before: int  # the newest base a recorded run wrote (0 if none): what the deltas apply to
    hours_pending: bool  # an hour cell in [that base, M): a streaming count to reset
    hours_from_as_of: int  # Σ hour cells at/after M (they count on top of the new base)
    newest_base_ms: int | None
    unapplied_base: bool = False  # the newest base before M is a failed run's: superseded at M


def snapshot_row(bases: list[Cell], hours: list[Cell], as_of_ms: int, priors: ps.Priors) -> RowSnapshot:
    """A row seen from a run at M that reads what the recorded runs applied (``priors``; empty in a
    full rebuild, which does not use ``base_before``)."""
    newest = max(bases, key=lambda c: c.timestamp_ms, default=None)
    before = [c for c in bases if c.timestamp_ms < as_of_ms]
    applied = priors.newest_applied(before)
    newest_before = max(before, key=lambda c: c.timestamp_ms, default=None)
    since = applied.timestamp_ms if applied is not None else None
    pending = any((since is None or c.timestamp_ms >= since) and c.timestamp_ms < as_of_ms for c in hours)
    return RowSnapshot(
        shown=layout.total_posts(newest, hours),
        base_before=layout.decode_count(applied.value) if applied is not None else 0,
        hours_pending=pending,
        hours_from_as_of=sum(layout.decode_count(c.value) for c in hours if c.timestamp_ms >= as_of_ms),
        newest_base_ms=newest.timestamp_ms if newest is not None else None,
        unapplied_base=newest_before is not None and newest_before is not applied,
    )


class KeyRangesFn(beam.DoFn):
    """One element → the table's key ranges (on a worker: SampleRowKeys is an RPC)."""

    def __init__(self, project: str, instance: str, table: str):
        self._args = (project, instance, table)

    def process(self, _):
        from hashtag_store.scan import CountRowsReader

        reader = CountRowsReader(*self._args)
        try:
            yield from reader.key_ranges()
        finally:
            reader.close()


class PendingKeysFn(beam.DoFn):
    """A key range → the keys of its rows with an hour cell in [since, M) (keys only)."""

    def __init__(self, tables: "Tables", since: dt.datetime, as_of: dt.datetime):
        self._tables, self._since, self._as_of = tables, since, as_of
        self._reader = None

    def setup(self):
        from hashtag_store.scan import CountRowsReader

        t = self._tables
        self._reader = CountRowsReader(t.project, t.instance, t.counts, app_profile=t.app_profile)

    def process(self, key_range):
        yield from self._reader.pending_keys(key_range, self._since, self._as_of)

    def teardown(self):
        if self._reader is not None:
            self._reader.close()


TAG_ROWS_BATCH = (50, 500)  # touched tags per multi-key read (min, max)


DAYS = "days"  # ReadRowsFn's / ReadTagRowsFn's tagged output: (key, DayPriors) of the rows with ``days`` cells before M


class ReadRowsFn(beam.DoFn):
    """A key range → (key, RowSnapshot) of each row with count cells in it, and to the ``DAYS``
    output (key, DayPriors) of each row with ``days`` cells before M (one scan for both)."""

    def __init__(self, project: str, instance: str, table: str, as_of: dt.datetime, priors: ps.Priors):
        self._args = (project, instance, table)
        self._as_of, self._priors = as_of, priors
        self._as_of_ms = layout.to_millis(as_of)
        self._reader = None
        self._rows = Metrics.counter(NAMESPACE, "table_rows")

    def setup(self):
        from hashtag_store.scan import CountRowsReader

        self._reader = CountRowsReader(*self._args, days_before=self._as_of)

    def process(self, key_range):
        for row in self._reader.read_range(key_range):
            yield from row_outputs(row, self._as_of_ms, self._priors)

    def teardown(self):
        if self._reader is not None:
            self._reader.close()


class ReadTagRowsFn(beam.DoFn):
    """A batch of touched tag keys → (key, RowSnapshot) of each that has a row with count cells,
    and to ``DAYS`` (key, DayPriors): ONE multi-key read per batch (``hashtag_store.scan.TagRowsReader``)."""

    def __init__(self, tables: "Tables", as_of: dt.datetime, priors: ps.Priors):
        self._tables, self._as_of, self._priors = tables, as_of, priors
        self._as_of_ms = layout.to_millis(as_of)
        self._reader = None
        self._rows = Metrics.counter(NAMESPACE, "table_rows")

    def setup(self):
        from hashtag_store.scan import TagRowsReader

        t = self._tables
        self._reader = TagRowsReader(t.project, t.instance, t.counts, before=self._as_of, app_profile=t.app_profile)

    def process(self, keys):
        for row in self._reader.read_rows(keys):
            yield from row_outputs(row, self._as_of_ms, self._priors)

    def teardown(self):
        if self._reader is not None:
            self._reader.close()


def row_outputs(row, as_of_ms: int, priors: ps.Priors):
    """A CountRow → (key, RowSnapshot) if it has count cells, and (key, DayPriors) to ``DAYS`` if it has day cells."""
    if row.bases or row.hours:
        yield row.key, snapshot_row(row.bases, row.hours, as_of_ms, priors)
    if row.days:
        yield pvalue.TaggedOutput(DAYS, (row.key, day_cells.priors_from_cells(row.days, priors.applied)))


# ---- 6: bases and drift ----------------------------------------------------------------------
class TagResult(NamedTuple):
    key: str
    exact: int  # the new base at M
    snapshot: RowSnapshot | None


def tag_result(key: str, deltas: Iterable, snapshots: Iterable[RowSnapshot], *, fresh: bool) -> TagResult | None:
    """The new base of a tag, or None when the run does not touch it (see the module doc, 6)."""
    deltas, snaps = list(deltas), list(snapshots)
    snap = snaps[0] if snaps else None
    if not deltas and (snap is None or not (fresh or snap.hours_pending or snap.unapplied_base)):
        return None
    start = 0 if fresh or snap is None else snap.base_before
    return TagResult(key, start + sum(t.count for t in deltas), snap)


def tag_day_cells(key: str, g: dict, *, fresh: bool, horizon: DaySpan, account_days: DaySpan
                  ) -> Iterator[DayCells]:
    """The join's group of a tag → its day cells at M, if any (hashtags.day_cells.day_cells)."""
    cells = day_cells.day_cells(key, g["day_delta"], g["accounts"], next(iter(g["day_prior"]), None),
                                fresh=fresh, horizon=horizon, account_days=account_days)
    if cells is not None:
        yield cells


def tag_drift(r: TagResult, as_of_ms: int) -> TagDrift:
    snap = r.snapshot
    if snap is None:  # a tag the table has never seen (e.g. only late events)
        return TagDrift(r.key, 0, max(r.exact, 0))
    if snap.newest_base_ms is not None and snap.newest_base_ms > as_of_ms:
        return TagDrift(r.key, snap.shown, snap.shown, superseded=True)
    # the page's total after the run, clamped at 0 like ``shown`` (layout.total_posts)
    return TagDrift(r.key, snap.shown, max(r.exact + snap.hours_from_as_of, 0))


class DriftCombineFn(beam.CombineFn):
    def __init__(self, as_of: dt.datetime, list_limit: int = DEFAULT_LIST_LIMIT):
        self._as_of_ms = layout.to_millis(as_of)
        self._limit = list_limit

    def create_accumulator(self):
        return DriftAccumulator(list_limit=self._limit)

    def add_input(self, acc, r: TagResult):
        return acc.add(tag_drift(r, self._as_of_ms))

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0]
        for a in accs[1:]:
            out.merge(a)
        return out

    def extract_output(self, acc):
        return json.dumps(acc.to_json(), ensure_ascii=False)


class _BaseRow(beam.DoFn):
    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._written = Metrics.counter(NAMESPACE, "base_cells")
        self._zeroed = Metrics.counter(NAMESPACE, "base_cells_zero")

    def process(self, r: TagResult):
        self._written.inc()
        if r.exact == 0:
            self._zeroed.inc()
        yield mutations.base_count_row(r.key, self._as_of, r.exact)


class _DayRow(beam.DoFn):
    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._posts = Metrics.counter(NAMESPACE, "day_post_cells")
        self._accounts = Metrics.counter(NAMESPACE, "day_account_cells")

    def process(self, cells: DayCells):
        self._posts.inc(len(cells.posts))
        self._accounts.inc(len(cells.accounts))
        yield mutations.day_cells_row(cells.key, self._as_of, cells.by_date())


class _StateRow(beam.DoFn):
    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._written = Metrics.counter(NAMESPACE, "state_cells")

    def process(self, change: PostChange):
        from hashtag_store.post_state import state_row

        self._written.inc()
        yield state_row(change.post_id, change.new, self._as_of)


# ---- 8: the report and the run record, the job's last step -------------------------------------
class ReportSpec(NamedTuple):
    """Where and how the job reports itself (``FinishRunFn``)."""
    root: str  # the report folder (local or gs://)
    threshold: float | None = None
    worst_n: int = DEFAULT_WORST_N
    note: str | None = None  # what ``hashtags.post_state.resolve`` adjusted, if anything


def report_paths(root: str, day: dt.date) -> tuple[str, str]:
    """``<root>/drift-<as_of>.json`` and ``.md`` (what the DAG's publish_drift_report reads)."""
    base = f"{root.rstrip('/')}/drift-{day.isoformat()}"
    return f"{base}.json", f"{base}.md"


COUNT_NAMES = ("archive_files", "events_read", "events_rejected", "events_before_as_of", "posts",
               "posts_changed", "state_lookup_rpcs", "tags_touched", "table_rows", "related_posts")
# Cells the run computes for the table besides the bases and states (written unless a dry run).
WRITTEN_NAMES = ("day_post_cells", "day_account_cells", "related_cells")


def report_extra(plan: RunPlan, note: str | None, counts: dict, acc: DriftAccumulator,
                 now: dt.datetime) -> dict:
    """The report's fields besides the drift: the plan and the run's in-graph counts. One base
    cell per touched tag (= the drift's tags), one state cell per changed post; none in a dry run."""
    extra = {
        "mode": plan.mode,
        "arrived_from": plan.arrived_from.isoformat() if plan.arrived_from else None,
        "arrived_to": plan.arrived_to.isoformat() if plan.arrived_to else None,
        **{name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        "base_cells_written": 0 if plan.dry_run else acc.tags,
        "state_cells_written": 0 if plan.dry_run else int(counts.get("posts_changed", 0)),
        **{f"{name}_written": 0 if plan.dry_run else int(counts.get(name, 0)) for name in WRITTEN_NAMES},
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if note:
        extra["note"] = note
    return extra


def _write_text(path: str, text: str) -> None:
    if "://" not in path:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


class FinishRunFn(beam.DoFn):
    """One element (after every write: see ``build_recount``) → the drift report files, then the
    run record (unless a dry run). Both are idempotent (files overwritten, the record a SetCell at
    M), so a retried bundle does no harm."""

    def __init__(self, plan: RunPlan, tables: "Tables", spec: ReportSpec):
        self._plan, self._tables, self._spec = plan, tables, spec

    def process(self, _, drift_json: str, counts: dict):
        from hashtag_store import post_state as state_store

        plan, spec = self._plan, self._spec
        now = dt.datetime.now(layout.UTC)
        acc = DriftAccumulator.from_json(json.loads(drift_json))
        as_of_s = layout.midnight_utc(plan.as_of).strftime("%Y-%m-%dT%H:%M:%SZ")
        report = drift.build_report(acc, as_of=as_of_s, table=self._tables.counts, dry_run=plan.dry_run,
                                    threshold=spec.threshold,
                                    extra=report_extra(plan, spec.note, counts, acc, now))
        json_path, md_path = report_paths(spec.root, plan.as_of)
        _write_text(json_path, drift.render_json(report))
        _write_text(md_path, drift.render_markdown(report, spec.worst_n))
        if not plan.dry_run:
            t = self._tables
            record = ps.RunRecord(plan.as_of, plan.mode, plan.arrived_from, plan.arrived_to,
                                  dt.datetime.now(layout.UTC))
            state_store.write_run(t.project, t.instance, t.post_state, record)
        yield json_path


def _count_as(name: str):
    return lambda _: (name, 1)


# ---- the graph -------------------------------------------------------------------------------
class Tables(NamedTuple):
    project: str
    instance: str
    counts: str  # the hashtags table
    post_state: str
    counts_exist: bool = True  # False: a dry run before the table was ever created (nothing to read)
    app_profile: str | None = None  # reads of priors and writes: settings.WRITER_APP_PROFILE in production


def write_rows(tables: Tables, table: str) -> beam.PTransform:
    """THE write of the job's DirectRows to ``table`` (every Bigtable write of the recount goes
    through here, so the writers' app profile is set in one place): the prior reads' profile, the
    single-cluster ``writer`` in production (pipelines/bigtable_write.py: Beam's WriteToBigTable
    takes no app profile)."""
    from pipelines.bigtable_write import WriteRows

    return WriteRows(tables.project, tables.instance, table, app_profile_id=tables.app_profile)


def _table_rows(p: beam.Pipeline, tables: Tables, as_of: dt.datetime, priors: ps.Priors, *, fresh: bool, touched):
    """RowSnapshot (main) and DayPriors (``DAYS``) of the rows the run reads. A nightly: the
    ``touched`` tags (every tag of the night's events and of the states its changes replace) and the rows with hour cells since the day
    before its last recorded run, by batched point reads; a full rebuild: every row (key ranges in
    parallel), since it resets every row with count cells."""
    if not tables.counts_exist:
        empty = p | "NoTable" >> beam.Create([])
        return empty, empty
    ranges = (p
              | "Once" >> beam.Create([None])
              | "KeyRanges" >> beam.ParDo(KeyRangesFn(tables.project, tables.instance, tables.counts))
              | "SpreadRanges" >> beam.Reshuffle())
    if fresh:
        rows = ranges | "ReadRows" >> beam.ParDo(ReadRowsFn(tables.project, tables.instance, tables.counts,
                                                            as_of, priors)).with_outputs(DAYS, main="rows")
        return rows.rows, rows[DAYS]
    since = layout.midnight_utc(priors.last) - dt.timedelta(days=1) if priors.last else layout.EPOCH
    pending = ranges | "PendingHours" >> beam.ParDo(PendingKeysFn(tables, since, as_of))
    rows = ((touched, pending)
            | "TagsToRead" >> beam.Flatten()
            | "DistinctTags" >> beam.Distinct()  # a touched tag may also have pending hours
            | "BatchTags" >> beam.BatchElements(min_batch_size=TAG_ROWS_BATCH[0], max_batch_size=TAG_ROWS_BATCH[1])
            | "ReadTagRows" >> beam.ParDo(ReadTagRowsFn(tables, as_of, priors)).with_outputs(DAYS, main="rows"))
    return rows.rows, rows[DAYS]


def _day_cell_counts(cells: DayCells):
    yield "day_post_cells", len(cells.posts)
    yield "day_account_cells", len(cells.accounts)


def build_recount(p: beam.Pipeline, *, archive_root: str, plan: RunPlan, fresh: bool, tables: Tables,
                  report: ReportSpec, list_limit: int = DEFAULT_LIST_LIMIT, hidden: frozenset[str] = frozenset(),
                  priors: ps.Priors = ps.Priors()) -> dict:
    """The reconciliation graph for ``plan`` (already resolved: ``hashtags.post_state.resolve``).
    ``fresh``: empty prior state (a full rebuild); ``priors``: what the recorded runs applied. ``hidden``: the tags never related (step 7c).
    Writes nothing to the tables when ``plan.dry_run``. Its last step writes the drift report under
    ``report.root`` and then records the run (step 8 of the module doc)."""
    from apache_beam.transforms.util import WaitOn

    as_of = layout.midnight_utc(plan.as_of)
    horizon, account_days = day_cells.horizon(plan.as_of), day_cells.account_days(plan)
    counts: list = []  # PCollections of (name, n), summed into the report's figures
    files = p | "Files" >> ArchiveFiles(archive_root, plan)
    read = files | "Parse" >> ParseEvents(as_of)
    winners = read["events"] | "LatestPerPost" >> beam.CombinePerKey(LatestFn())
    counts.append(read["counts"])
    changes = winners | "Changes" >> Changes(priors, fresh=fresh, tables=tables, counts=counts)
    counts += [winners | "CountPosts" >> beam.Map(_count_as("posts")),
               changes | "CountChanged" >> beam.Map(_count_as("posts_changed"))]
    deltas = changes | "Deltas" >> SumTagDeltas()
    day_deltas = changes | "DayDeltas" >> SumDayDeltas(horizon)
    accounts = winners | "Accounts" >> DayAccounts(account_days)
    touched = ((read["tags"], deltas | "DeltaTags" >> beam.Keys())  # + the old winners' tags (edits, deletes)
               | "Touched" >> beam.Flatten() | "DistinctTouched" >> beam.Distinct())
    rows, day_priors = _table_rows(p, tables, as_of, priors, fresh=fresh, touched=touched)
    counts += [rows | "CountRows" >> beam.Map(_count_as("table_rows")),
               touched | "CountTouched" >> beam.Map(_count_as("tags_touched"))]
    joined = ({"delta": deltas, "row": rows, "day_delta": day_deltas, "accounts": accounts, "day_prior": day_priors}
              | "Join" >> beam.CoGroupByKey())
    results = joined | "Bases" >> beam.FlatMapTuple(lambda key, g: filter(None, [
        tag_result(key, g["delta"], g["row"], fresh=fresh)]))
    days = joined | "DayCells" >> beam.FlatMap(lambda kv: tag_day_cells(
        *kv, fresh=fresh, horizon=horizon, account_days=account_days))
    counts.append(days | "CountDayCells" >> beam.FlatMap(_day_cell_counts))
    related_lists = (p
                     | "RelatedFiles" >> ArchiveFiles(archive_root, related_plan(plan))
                     | "RelatedWinners" >> Winners(as_of)
                     | "Related" >> RelatedTags(plan.as_of, hidden, counts=counts))
    counts.append(related_lists | "CountRelated" >> beam.Map(_count_as("related_cells")))
    drift_summary = results | "Drift" >> beam.CombineGlobally(DriftCombineFn(as_of, list_limit))
    run_counts = tuple(counts) | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombinePerKey(sum)
    written = []
    if not plan.dry_run:
        # WriteToBigTable.expand returns its ParDo's output (Beam 2.77 io/gcp/bigtableio.py: the
        # ParDo of _BigTableWriteFn, which emits nothing and flushes its MutationsBatcher in
        # finish_bundle, raising on any failed mutation): an empty PCollection complete only when
        # every row of the write is flushed.
        written.append(results
                       | "BaseRows" >> beam.ParDo(_BaseRow(as_of))
                       | "WriteBase" >> write_rows(tables, tables.counts))
        written.append(changes
                       | "StateRows" >> beam.ParDo(_StateRow(as_of))
                       | "WriteStates" >> write_rows(tables, tables.post_state))
        written.append(days
                       | "DayRows" >> beam.ParDo(_DayRow(as_of))
                       | "WriteDays" >> write_rows(tables, tables.counts))
        written.append(related_lists
                       | "RelatedRows" >> beam.ParDo(RelatedRowFn(as_of))
                       | "WriteRelated" >> write_rows(tables, tables.counts))
    # The barrier: Beam's WaitOn (transforms/util.py, 2.77) takes each waited-on PCollection as a
    # side input (AsIter after a GroupByKey), and in a batch pipeline a side input is materialized
    # completely before its consumer runs ("would ensure that PCollections Y and Z (and hence their
    # producing transforms) are complete before SomeTransform gets executed", its doc;
    # beam.apache.org/documentation/transforms/python/other/waiton). The drift summary and the
    # counts are side inputs too, so the report is built from complete figures.
    finish = p | "Finish" >> beam.Create([None])
    if written:
        finish = finish | "AfterWrites" >> WaitOn(*written)
    reported = finish | "ReportAndRecord" >> beam.ParDo(
        FinishRunFn(plan, tables, report), pvalue.AsSingleton(drift_summary), pvalue.AsDict(run_counts))
    return {"results": results, "changes": changes, "deltas": deltas, "days": days, "related": related_lists,
            "reported": reported}
