"""The reconciliation job's graph (DESIGN.md "Reconciliation (incremental)"): the archived events of
some ARRIVAL days → per-post winners → changes against the per-post state → per-tag deltas → the
exact ``counts:base`` at M, the new post states at M, and the drift report. ``recount_main`` is the
thin main (plans the run, creates tables, records the run after every write succeeded).

For ``as_of`` = M (a UTC midnight) and the arrival days of the plan:

1. **Files**: the plan's ``arrived=YYYY-MM-DD`` patterns (``hashtags.archive.partition_glob``; the
   whole archive for a full rebuild) are matched ON THE WORKERS (``fileio.MatchAll``), filtered to
   the plan's days, spread (``Reshuffle``) and read one file per unit of work, fused with the parse
   (the streaming job's validation: ``hashtags.messages.parse_post_event_fields``, no future check).
2. **Winners**: per post, the latest event with event time < M (``hashtags.post_state.later``, THE
   order). A ``CombinePerKey`` keyed by a stable bucket of the post_id (accumulator {post_id:
   candidate}), so combiner lifting sends one dict per bucket and bundle through the shuffle.
3. **Changes**: each winner against the post's state as of BEFORE M (``BatchElements`` → one
   multi-key ``ReadRows`` per batch, ``hashtag_store.post_state.PostStateReader``); a full rebuild
   starts from empty state and skips the lookups. A post changes when its winner is later than
   the state (a duplicate or an older event changes nothing).
4. **Deltas**: −1 for each tag of the old winner if it was published, +1 for each of the new one's
   (``hashtags.post_state.tag_deltas``; tags by the shared rule ``PostEvent.tags``), summed per tag
   by the streaming job's own combiner (``pipelines.transforms.TallyFn``).
5. **Rows**: every count row of the ``hashtags`` table, read in parallel over key ranges
   (``hashtag_store.scan``) → :class:`RowSnapshot`.
6. **Bases**: ``base@M = latest base before M + Σ deltas`` for every tag with a delta AND every tag
   whose row has hour cells in [that base, M) (a streaming over-count is reset); a full rebuild
   writes Σ deltas for every counted tag and 0 for every other row with count cells. The drift
   report covers exactly these tags (shown vs exact). The bases wait behind the join
   (``CoGroupByKey``, a barrier), so the rows are read before any base is written.
7. **States**: the changed posts' new states at M.

Every read is "as of before M" and every write a SetCell at M, so a rerun computes and writes the
same cells: idempotent, and a run that died halfway is simply run again.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from typing import Iterable, Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from hashtag_store import mutations
from hashtags import archive, layout
from hashtags import post_state as ps
from hashtags.layout import Cell
from hashtags.messages import Rejected, parse_post_event_fields
from hashtags.planning import RunPlan, parse_day
from pipelines.drift import DEFAULT_LIST_LIMIT, DriftAccumulator, TagDrift
from pipelines.transforms import TallyFn

NAMESPACE = "recount"
DEFAULT_POST_BUCKETS = 256
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


def post_bucket(post_id: str, buckets: int) -> int:
    """A post's bucket: stable across processes and runs (unlike ``hash``, salted per process)."""
    return zlib.crc32(post_id.encode("utf-8", "surrogatepass")) % buckets


# ---- 1-2: read, parse, winners ---------------------------------------------------------------
class KeyedEventsFn(beam.DoFn):
    """Archive line → (bucket, (post_id, candidate)) for events with event time before M. Parse,
    filter and pack in one step: that is the per-event cost of the job."""

    def __init__(self, as_of: dt.datetime, buckets: int = DEFAULT_POST_BUCKETS):
        self._as_of_us = ps.micros(as_of)
        self._buckets = buckets
        self._valid = Metrics.counter("hashtags", "post_events_valid")
        self._rejected = Metrics.counter("hashtags", "post_events_rejected")
        self._kept = Metrics.counter(NAMESPACE, "events_before_as_of")
        self._skipped = Metrics.counter(NAMESPACE, "events_at_or_after_as_of")

    def process(self, line):
        return self.keyed(line)

    def keyed(self, line):
        f = parse_post_event_fields(line)
        if type(f) is Rejected:
            self._rejected.inc()
            return
        self._valid.inc()
        c = ps.candidate_from_fields(f)
        if ps.event_time_us(c) < self._as_of_us:
            self._kept.inc()
            post_id = f[1]
            yield post_bucket(post_id, self._buckets), (post_id, c)
        else:
            self._skipped.inc()


class KeyedEventsOfFilesFn(KeyedEventsFn):
    """An archive file (a path or FileMetadata; local or gs://, gzip from the extension) →
    ``KeyedEventsFn`` of each non-empty line. A plain buffered ``for line in file`` (Beam's text
    record reader costs ~4 µs of Python per line). A file is one unit of work: the streaming job
    cuts the archive into files bounded by time and size."""

    def __init__(self, as_of: dt.datetime, buckets: int = DEFAULT_POST_BUCKETS):
        super().__init__(as_of, buckets)
        self._files = Metrics.counter(NAMESPACE, "archive_files_read")

    def process(self, path):
        if isinstance(path, FileMetadata):
            path = path.path
        self._files.inc()
        keyed = self.keyed
        with open_archive_file(path) as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if line:
                    yield from keyed(line)


def open_archive_file(path: str):
    """A binary, line-iterable reader of an archive file. Gzip through Python's ``gzip`` over the raw
    stream: Beam's ``CompressedFile`` (compression AUTO) is not iterable."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    return gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw


class LatestPerPostFn(beam.CombineFn):
    """The winner of every post of one bucket: accumulator = {post_id: candidate}.

    Keyed by bucket rather than by post_id, so Beam's combiner lifting batches a bundle's per-post
    winners into one dict per bucket before the shuffle: it moves (buckets × bundles) elements
    instead of one per event. Merging is ``hashtags.post_state.later`` per post (a total order), so
    the result does not depend on the split."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, kv):
        post_id, c = kv
        acc[post_id] = ps.later(acc.get(post_id), c)
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs, None)
        if out is None:
            return {}
        for acc in accs:
            if len(acc) > len(out):
                out, acc = acc, out
            get = out.get
            for post_id, c in acc.items():
                out[post_id] = ps.later(get(post_id), c)
        return out

    def compact(self, acc):
        return acc

    def extract_output(self, acc):
        return acc


def _winners(kv) -> Iterator[tuple[str, ps.Candidate]]:
    _, winners = kv
    yield from winners.items()


class Winners(beam.PTransform):
    """Archive file paths (or FileMetadata) → (post_id, winning candidate before M)."""

    def __init__(self, as_of: dt.datetime, buckets: int = DEFAULT_POST_BUCKETS):
        super().__init__()
        self.as_of, self.buckets = as_of, buckets

    def expand(self, files):
        return (files
                | "ParseBeforeAsOf" >> beam.ParDo(KeyedEventsOfFilesFn(self.as_of, self.buckets))
                | "LatestPerPost" >> beam.CombinePerKey(LatestPerPostFn())
                | "PerPost" >> beam.FlatMap(_winners))


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
    """A batch of (post_id, winner) → the posts whose winner is later than their state before M:
    ONE multi-key read per batch (``hashtag_store.post_state.PostStateReader``)."""

    def __init__(self, project: str, instance: str, table: str, as_of: dt.datetime):
        self._args = (project, instance, table, as_of)
        self._reader = None
        self._n = _ChangeCounters()
        self._lookups = Metrics.counter(NAMESPACE, "state_lookup_rpcs")
        self._found = Metrics.counter(NAMESPACE, "posts_with_state")

    def setup(self):
        from hashtag_store.post_state import PostStateReader

        self._reader = PostStateReader(*self._args)

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
    """(post_id, winner) → PostChange for every post whose winner is later than its state before M
    (``tables`` None or ``fresh``: from empty state, no lookups)."""

    def __init__(self, as_of: dt.datetime, *, fresh: bool, tables: "Tables | None" = None):
        super().__init__()
        self.as_of, self.fresh, self.tables = as_of, fresh, tables

    def expand(self, winners):
        if self.fresh:
            return winners | "FromEmptyState" >> beam.ParDo(FreshChangesFn())
        t = self.tables
        return (winners
                | "Batch" >> beam.BatchElements(min_batch_size=LOOKUP_BATCH[0], max_batch_size=LOOKUP_BATCH[1])
                | "AgainstPriorState" >> beam.ParDo(PriorStateChangesFn(t.project, t.instance, t.post_state,
                                                                         self.as_of)))


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


# ---- 5: the table's rows ---------------------------------------------------------------------
class RowSnapshot(NamedTuple):
    """What one row of the ``hashtags`` table holds, seen from a run at M."""

    shown: int  # the page's total now (newest base + hour cells at/after it)
    base_before: int  # the newest base before M (0 if none): what the deltas apply to
    hours_pending: bool  # an hour cell in [that base, M): a streaming count to reset
    hours_from_as_of: int  # Σ hour cells at/after M (they count on top of the new base)
    newest_base_ms: int | None


def snapshot_row(bases: list[Cell], hours: list[Cell], as_of_ms: int) -> RowSnapshot:
    newest = max(bases, key=lambda c: c.timestamp_ms, default=None)
    before = max((c for c in bases if c.timestamp_ms < as_of_ms), key=lambda c: c.timestamp_ms, default=None)
    since = before.timestamp_ms if before is not None else None
    pending = any((since is None or c.timestamp_ms >= since) and c.timestamp_ms < as_of_ms for c in hours)
    return RowSnapshot(
        shown=layout.total_posts(newest, hours),
        base_before=layout.decode_count(before.value) if before is not None else 0,
        hours_pending=pending,
        hours_from_as_of=sum(layout.decode_count(c.value) for c in hours if c.timestamp_ms >= as_of_ms),
        newest_base_ms=newest.timestamp_ms if newest is not None else None,
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


class ReadRowsFn(beam.DoFn):
    """A key range → (key, RowSnapshot) of each row with count cells in it."""

    def __init__(self, project: str, instance: str, table: str, as_of: dt.datetime):
        self._args = (project, instance, table)
        self._as_of_ms = layout.to_millis(as_of)
        self._reader = None
        self._rows = Metrics.counter(NAMESPACE, "table_rows")

    def setup(self):
        from hashtag_store.scan import CountRowsReader

        self._reader = CountRowsReader(*self._args)

    def process(self, key_range):
        for row in self._reader.read_range(key_range):
            self._rows.inc()
            yield row.key, snapshot_row(row.bases, row.hours, self._as_of_ms)

    def teardown(self):
        if self._reader is not None:
            self._reader.close()


# ---- 6: bases and drift ----------------------------------------------------------------------
class TagResult(NamedTuple):
    key: str
    exact: int  # the new base at M
    snapshot: RowSnapshot | None


def tag_result(key: str, deltas: Iterable, snapshots: Iterable[RowSnapshot], *, fresh: bool) -> TagResult | None:
    """The new base of a tag, or None when the run does not touch it (see the module doc, 6)."""
    deltas, snaps = list(deltas), list(snapshots)
    snap = snaps[0] if snaps else None
    if not deltas and (snap is None or not (fresh or snap.hours_pending)):
        return None
    start = 0 if fresh or snap is None else snap.base_before
    return TagResult(key, start + sum(t.count for t in deltas), snap)


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


class _StateRow(beam.DoFn):
    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._written = Metrics.counter(NAMESPACE, "state_cells")

    def process(self, change: PostChange):
        from hashtag_store.post_state import state_row

        self._written.inc()
        yield state_row(change.post_id, change.new, self._as_of)


# ---- the graph -------------------------------------------------------------------------------
class Tables(NamedTuple):
    project: str
    instance: str
    counts: str  # the hashtags table
    post_state: str
    counts_exist: bool = True  # False: a dry run before the table was ever created (nothing to read)

    def bigtable(self, table: str) -> dict:
        return dict(project_id=self.project, instance_id=self.instance, table_id=table)


def build_recount(p: beam.Pipeline, *, archive_root: str, plan: RunPlan, fresh: bool, tables: Tables,
                  summary_path: str, list_limit: int = DEFAULT_LIST_LIMIT,
                  post_buckets: int = DEFAULT_POST_BUCKETS) -> dict:
    """The reconciliation graph for ``plan`` (already resolved: ``hashtags.post_state.resolve``).
    ``fresh``: empty prior state (a full rebuild). Writes nothing when ``plan.dry_run``. Writes the
    drift accumulator as one JSON line to ``summary_path``."""
    from apache_beam.io import WriteToText
    from apache_beam.io.gcp.bigtableio import WriteToBigTable

    as_of = layout.midnight_utc(plan.as_of)
    files = (p
             | "Patterns" >> beam.Create(file_patterns(archive_root, plan))
             | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
             | "PlannedDays" >> beam.Filter(lambda m: in_plan(m.path, plan))
             | "Paths" >> beam.Map(lambda m: m.path)
             | "Spread" >> beam.Reshuffle())
    changes = (files
               | "Winners" >> Winners(as_of, post_buckets)
               | "Changes" >> Changes(as_of, fresh=fresh, tables=tables))
    deltas = changes | "Deltas" >> SumTagDeltas()
    if tables.counts_exist:
        rows = (p
                | "Once" >> beam.Create([None])
                | "KeyRanges" >> beam.ParDo(KeyRangesFn(tables.project, tables.instance, tables.counts))
                | "SpreadRanges" >> beam.Reshuffle()
                | "ReadRows" >> beam.ParDo(ReadRowsFn(tables.project, tables.instance, tables.counts, as_of)))
    else:
        rows = p | "NoTable" >> beam.Create([])
    results = ({"delta": deltas, "row": rows}
               | "Join" >> beam.CoGroupByKey()
               | "Bases" >> beam.FlatMapTuple(lambda key, g: filter(None, [
                   tag_result(key, g["delta"], g["row"], fresh=fresh)])))
    (results
     | "Drift" >> beam.CombineGlobally(DriftCombineFn(as_of, list_limit))
     | "WriteSummary" >> WriteToText(summary_path, shard_name_template="", num_shards=1))
    if not plan.dry_run:
        (results
         | "BaseRows" >> beam.ParDo(_BaseRow(as_of))
         | "WriteBase" >> WriteToBigTable(**tables.bigtable(tables.counts)))
        (changes
         | "StateRows" >> beam.ParDo(_StateRow(as_of))
         | "WriteStates" >> WriteToBigTable(**tables.bigtable(tables.post_state)))
    return {"results": results, "changes": changes, "deltas": deltas}
