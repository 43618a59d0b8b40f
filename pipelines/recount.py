"""The nightly recount: the exact count of every hashtag from the post-event archive, as of a UTC
midnight, written as ``counts:base@as_of`` (DESIGN.md "Recount job and DAG"). ``recount_main`` is
the thin main; ``backfill`` runs it over dates. This module holds the transforms and pure helpers.

Semantics, for ``as_of`` (a UTC midnight):

* the input is every archived event with ``event_time < as_of`` (the archive is partitioned by the
  event's UTC date, so only partitions ``dt=<date before as_of>`` are read; late events sit in their
  event date's partition whenever they arrived);
* per ``post_id`` the LATEST event wins: by event_time; on a tie ``deleted`` beats ``published``;
  then event_id, then the event's JSON line (a total order: the result never depends on the input
  order). So a duplicated delivery counts once, a published-then-deleted post counts 0, a
  re-publish after a delete counts, an edit counts the latest caption's tags;
* the winners that are ``published`` go through the SAME ``CountTags`` transform as the streaming
  job (distinct normalised tags per post, +1 each);
* every counted tag, and every tag that has a row in the table but no count (it disappeared) gets
  ``counts:base = exact count`` (0 for the latter) at ``as_of``: an idempotent SetCell.

Where the time goes (docs/BENCHMARKS.md "Recount"): reading + parsing + packing is one step per
archive file; the per-post winner is a ``CombinePerKey`` keyed by a stable bucket of the post_id
(``LatestPerPostFn``, accumulator {post_id: packed event}), so combiner lifting sends one dict per
bucket and bundle through the shuffle instead of one element per event; only the published winners
become PostEvents again, for ``CountTags``.

Before anything is written the job reads the table's rows (a snapshot) and joins them with the
exact counts to build the drift report (``pipelines.drift``); the writes sit behind that join (a
GroupByKey barrier), so the snapshot is complete before the first base cell is written.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import zlib
from typing import Iterable, Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from hashtag_store import mutations
from hashtags import layout
from hashtags.planning import parse_day
from hashtags.messages import (DELETED, PUBLISHED, PostEvent, Rejected, parse_post_event_fields,
                               post_event_from_fields)
from pipelines.drift import DEFAULT_LIST_LIMIT, DriftAccumulator, TagDrift
from pipelines.transforms import CountTags, event_json_line

NAMESPACE = "recount"
_PARTITION = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")


# ---- dates and archive files (pure) -----------------------------------------------------------
def as_of_time(day: str | dt.date) -> dt.datetime:
    return layout.midnight_utc(parse_day(day))


def partition_day(path: str) -> dt.date | None:
    """The ``dt=YYYY-MM-DD`` partition of an archive file path, or None."""
    m = _PARTITION.search(path.replace("\\", "/"))
    if not m:
        return None
    try:
        return dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None


def files_before(paths: Iterable[str], as_of: dt.datetime, since: dt.date | None = None) -> list[str]:
    """Archive files whose partition day is before ``as_of``'s day (and on/after ``since``), sorted."""
    day = as_of.astimezone(layout.UTC).date()
    out = []
    for p in paths:
        d = partition_day(p)
        if d is not None and d < day and (since is None or d >= since):
            out.append(p)
    return sorted(out)


def list_archive(archive_path: str) -> list[tuple[str, int]]:
    """Every ``<archive>/dt=*/*.jsonl`` file (local or gs://) with its size in bytes."""
    pattern = archive_path.rstrip("/") + "/dt=*/*.jsonl"
    try:
        result = FileSystems.match([pattern])[0]
    except Exception as e:  # BeamIOError when nothing matches on some filesystems
        if "No files found" in str(e) or "no files" in str(e).lower():
            return []
        raise
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def archive_days(archive_path: str) -> dict[dt.date, tuple[int, int]]:
    """day → (files, bytes) of the archive's partitions."""
    days: dict[dt.date, tuple[int, int]] = {}
    for path, size in list_archive(archive_path):
        d = partition_day(path)
        if d is not None:
            n, b = days.get(d, (0, 0))
            days[d] = (n + 1, b + size)
    return days


# ---- the winner of a post (pure) --------------------------------------------------------------
# Through the shuffle an event travels keyed by its post_id as a flat tuple of primitives (Beam's
# FastPrimitivesCoder encodes it in ~1.5 µs; a pickled PostEvent costs ~26 µs and 3x the bytes). The
# first three fields are the winner order's cheap part; the post_id is the key, not repeated:
# (event_time µs since the epoch, deleted?, event_id or "", event_id, user_id, caption, image_url, hashtags)
Packed = tuple


def _micros(t: dt.datetime) -> int:
    d = t - layout.EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def pack(e: PostEvent) -> Packed:
    return (_micros(e.event_time), 1 if e.event == DELETED else 0, e.event_id or "", e.event_id, e.user_id,
            e.caption, e.image_url, e.hashtags)


def pack_fields(f: tuple) -> Packed:
    """``pack`` of a ``parse_post_event_fields`` tuple (no PostEvent built)."""
    return (_micros(f[5]), 1 if f[0] == DELETED else 0, f[6] or "", f[6], f[2], f[3], f[4], f[7])


def unpack(post_id: str, p: Packed) -> PostEvent:
    return post_event_from_fields((DELETED if p[1] else PUBLISHED, post_id, p[4], p[5], p[6],
                                   layout.EPOCH + dt.timedelta(microseconds=p[0]), p[3],
                                   tuple(p[7]) if p[7] is not None else None))


def winner_order(e: PostEvent) -> tuple:
    """Sort key of an event among its post's events: the max wins (see module doc)."""
    return (e.event_time, 1 if e.event == DELETED else 0, e.event_id or "", event_json_line(e))


def later_event(a: PostEvent | None, b: PostEvent | None) -> PostEvent | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if winner_order(a) >= winner_order(b) else b


def later_packed(a: Packed | None, b: Packed | None) -> Packed | None:
    """``later_event`` on two packed events of ONE post: the cheap fields first; on a full tie, the
    JSON lines. Both events have the same post_id, event type and event time, so their lines share
    everything up to the fields compared here, and comparing the lines rebuilt with any one post_id
    orders them as the real lines do."""
    if a is None:
        return b
    if b is None:
        return a
    ka, kb = a[:3], b[:3]
    if ka != kb:
        return a if ka > kb else b
    if a == b:  # a duplicated delivery: the common tie
        return a
    return a if event_json_line(unpack("", a)) >= event_json_line(unpack("", b)) else b


class LatestEventFn(beam.CombineFn):
    """Latest event of a post (packed). Associative and commutative (a total order)."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, packed):
        if acc is None:
            return packed
        ka, kb = acc[:3], packed[:3]
        if ka != kb:
            return acc if ka > kb else packed
        return later_packed(acc, packed)

    def merge_accumulators(self, accs):
        out = None
        for a in accs:
            out = later_packed(out, a)
        return out

    def extract_output(self, acc):
        return acc


DEFAULT_POST_BUCKETS = 256


def post_bucket(post_id: str, buckets: int) -> int:
    """A post's bucket: stable across processes and runs (unlike ``hash``, salted per process)."""
    return zlib.crc32(post_id.encode("utf-8", "surrogatepass")) % buckets


class LatestPerPostFn(beam.CombineFn):
    """The latest event of every post of one bucket: accumulator = {post_id: packed}.

    Keyed by bucket rather than by post_id, so Beam's combiner lifting batches the per-post winners of
    a bundle into one dict per bucket before the shuffle: the shuffle moves (buckets × bundles)
    elements instead of one per event, which is most of the job's cost on the local runner. Merging
    is ``LatestEventFn``'s total order per post, so the result does not depend on the split."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, kv):
        post_id, packed = kv
        cur = acc.get(post_id)
        if cur is None:
            acc[post_id] = packed
        else:
            ka, kb = cur[:3], packed[:3]
            if ka != kb:
                if kb > ka:
                    acc[post_id] = packed
            else:
                acc[post_id] = later_packed(cur, packed)
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
            for post_id, packed in acc.items():
                cur = get(post_id)
                if cur is None:
                    out[post_id] = packed
                elif cur[:3] != packed[:3]:
                    if packed[:3] > cur[:3]:
                        out[post_id] = packed
                else:
                    out[post_id] = later_packed(cur, packed)
        return out

    def compact(self, acc):
        return acc

    def extract_output(self, acc):
        return acc


# ---- the table snapshot -----------------------------------------------------------------------
class RowSnapshot(NamedTuple):
    """What one row showed when the recount started."""

    before: int  # the page's total (latest base + hour cells at/after the base's as_of)
    hours_from_as_of: int  # Σ counts:h cells at/after THIS recount's as_of
    base_as_of_ms: int | None  # the latest base's timestamp (ms), if any


def snapshot_row(cells_base: list[layout.Cell], cells_hour: list[layout.Cell], as_of_ms: int) -> RowSnapshot:
    base = max(cells_base, key=lambda c: c.timestamp_ms) if cells_base else None
    before = layout.total_posts(base, cells_hour)
    hours = sum(layout.decode_count(c.value) for c in cells_hour if c.timestamp_ms >= as_of_ms)
    return RowSnapshot(before, hours, base.timestamp_ms if base else None)


def read_snapshot(project: str, instance: str, table: str, as_of: dt.datetime) -> Iterator[tuple[str, RowSnapshot]]:
    """Scan the table's count cells: (key, RowSnapshot) per row. Honours BIGTABLE_EMULATOR_HOST."""
    from google.cloud.bigtable.data import BigtableDataClient, ReadRowsQuery

    from hashtag_store.bigtable import COUNTS_FILTER

    from google.api_core.exceptions import NotFound

    as_of_ms = layout.to_millis(as_of)
    client = BigtableDataClient(project=project)
    try:
        reader = client.get_table(instance, table)
        rows = 0
        try:
            for row in reader.read_rows_stream(ReadRowsQuery(row_filter=COUNTS_FILTER), operation_timeout=1800):
                base, hours = [], []
                for c in row.cells:
                    if c.family != layout.FAMILY_COUNTS:
                        continue
                    cell = layout.Cell(c.value, c.timestamp_micros // 1000)
                    if c.qualifier == layout.COL_BASE:
                        base.append(cell)
                    elif layout.is_hour_column(c.qualifier):
                        hours.append(cell)
                rows += 1
                yield row.row_key.decode("utf-8"), snapshot_row(base, hours, as_of_ms)
        except NotFound:  # a missing table (a dry run before a full rebuild) shows nothing
            if rows:
                raise
            logging.getLogger(__name__).warning("table %s/%s not found: empty snapshot", instance, table)
    finally:
        client.close()


class SnapshotTableFn(beam.DoFn):
    """One element in → every row's (key, RowSnapshot). A plain DoFn over the data client
    (ReadFromBigtable needs a Java expansion service, unavailable locally)."""

    def __init__(self, project: str, instance: str, table: str, as_of: dt.datetime):
        self._args = (project, instance, table, as_of)
        self._rows = Metrics.counter(NAMESPACE, "table_rows")

    def process(self, _):
        for kv in read_snapshot(*self._args):
            self._rows.inc()
            yield kv


# ---- the pipeline pieces ----------------------------------------------------------------------
class KeyedEventsFn(beam.DoFn):
    """Archive line → (bucket, (post_id, packed event)) for events before ``as_of``, parsed and validated by the
    streaming job's own parser (``hashtags.messages.parse_post_event``, the metrics of
    ``ParsePostEventsFn``; the fields, not a PostEvent), in one step: parse, filter and pack are the
    per-event cost of the job."""

    def __init__(self, as_of: dt.datetime, buckets: int = DEFAULT_POST_BUCKETS):
        self._as_of_us = _micros(as_of)
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
        packed = pack_fields(f)
        if packed[0] < self._as_of_us:
            self._kept.inc()
            post_id = f[1]
            yield post_bucket(post_id, self._buckets), (post_id, packed)
        else:
            self._skipped.inc()


class KeyedEventsOfFilesFn(KeyedEventsFn):
    """An archive file (local or gs://, compression from the extension) → ``KeyedEventsFn`` of each of
    its non-empty lines. A buffered ``for line in file`` instead of ``ReadAllFromText`` (whose record
    reader costs ~4 µs of Python per line) and no step between reading and parsing. A file is one
    unit of work (no split inside a file): the streaming job cuts the archive into many small files."""

    def __init__(self, as_of: dt.datetime, buckets: int = DEFAULT_POST_BUCKETS):
        super().__init__(as_of, buckets)
        self._files = Metrics.counter(NAMESPACE, "archive_files_read")

    def process(self, path: str):
        self._files.inc()
        keyed = self.keyed
        with FileSystems.open(path) as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if line:
                    yield from keyed(line)


class _PublishedWinners(beam.DoFn):
    """(bucket, {post_id: winner}) → the winners that are published, as PostEvents."""

    def __init__(self):
        self._posts = Metrics.counter(NAMESPACE, "posts")
        self._live = Metrics.counter(NAMESPACE, "posts_live")

    def process(self, kv):
        _, winners = kv
        live = 0
        for post_id, packed in winners.items():
            if not packed[1]:
                live += 1
                yield unpack(post_id, packed)
        self._posts.inc(len(winners))
        self._live.inc(live)


class ExactCounts(beam.PTransform):
    """Archive lines (str/bytes), or archive file paths with ``from_files``, → (key, Tally) exact counts
    as of ``as_of``. Unparseable lines are counted (metric hashtags/post_events_rejected) and dropped;
    the streaming job only archives valid events, so there should be none."""

    def __init__(self, as_of: dt.datetime, buckets: int = DEFAULT_POST_BUCKETS, from_files: bool = False):
        super().__init__()
        self.as_of = as_of
        self.buckets = buckets
        self.from_files = from_files  # the input is archive file paths (read here), not lines

    def expand(self, lines):
        keyed = (KeyedEventsOfFilesFn if self.from_files else KeyedEventsFn)(self.as_of, self.buckets)
        return (
            lines
            | "ParseBeforeAsOf" >> beam.ParDo(keyed)
            | "LatestPerPost" >> beam.CombinePerKey(LatestPerPostFn())
            | "PublishedWinners" >> beam.ParDo(_PublishedWinners())
            | "CountTags" >> CountTags()
        )


class TagResult(NamedTuple):
    key: str
    exact: int  # the new base at as_of
    snapshot: RowSnapshot | None


def join_counts(kv) -> Iterator[TagResult]:
    key, grouped = kv
    tallies, snaps = list(grouped["exact"]), list(grouped["table"])
    exact = sum(t.count for t in tallies)
    yield TagResult(key, exact, snaps[0] if snaps else None)


def tag_drift(r: TagResult, as_of_ms: int) -> TagDrift:
    snap = r.snapshot
    if snap is None:  # a tag the table has never seen (e.g. only late events)
        return TagDrift(r.key, 0, r.exact)
    if snap.base_as_of_ms is not None and snap.base_as_of_ms > as_of_ms:
        return TagDrift(r.key, snap.before, snap.before, superseded=True)
    return TagDrift(r.key, snap.before, r.exact + snap.hours_from_as_of)


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


def build_recount(p: beam.Pipeline, *, files: list[str], as_of: dt.datetime, summary_path: str,
                  bigtable: dict | None, write: bool, list_limit: int = DEFAULT_LIST_LIMIT,
                  snapshot: beam.PCollection | None = None, post_buckets: int = DEFAULT_POST_BUCKETS) -> dict:
    """The recount graph. ``bigtable`` = dict(project_id, instance_id, table_id) of the table to
    snapshot and (unless ``write`` is False: dry run) write; ``snapshot`` overrides the table scan
    (tests). Writes the drift accumulator as one JSON line to ``summary_path``."""
    from apache_beam.io import WriteToText

    # The files are read inside ExactCounts' first step (reading fused with the parse: one step per
    # event less); the Reshuffle spreads the files over the workers.
    paths = p | "ArchiveFiles" >> beam.Create(files) | "Spread" >> beam.Reshuffle()
    exact = paths | "ExactCounts" >> ExactCounts(as_of, buckets=post_buckets, from_files=True)
    if snapshot is None:
        if bigtable is None:
            snapshot = p | "NoTable" >> beam.Create([])
        else:
            snapshot = (p | "Once" >> beam.Create([None])
                        | "SnapshotTable" >> beam.ParDo(SnapshotTableFn(
                            bigtable["project_id"], bigtable["instance_id"], bigtable["table_id"], as_of)))
    results = ({"exact": exact, "table": snapshot}
               | "Join" >> beam.CoGroupByKey()
               | "TagResults" >> beam.FlatMap(join_counts))
    (results
     | "Drift" >> beam.CombineGlobally(DriftCombineFn(as_of, list_limit))
     | "WriteSummary" >> WriteToText(summary_path, shard_name_template="", num_shards=1))
    out = {"results": results, "exact": exact}
    if write and bigtable is not None:
        from apache_beam.io.gcp.bigtableio import WriteToBigTable

        (results
         | "BaseRows" >> beam.ParDo(_BaseRow(as_of))
         | "WriteBase" >> WriteToBigTable(**bigtable))
    return out
