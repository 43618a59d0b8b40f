"""Step 5: the rows of the ``hashtags`` table the run reads, seen from M (:class:`RowSnapshot`),
and their day cells as the recorded runs left them."""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from hashtags import day_cells, layout
from hashtags import post_state as ps
from hashtags.layout import Cell
from pipelines.recount_steps import COUNTS, NAMESPACE, count_as
from pipelines.recount_steps.tables import Tables


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

    def __init__(self, tables: Tables, since: dt.datetime, as_of: dt.datetime):
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

    def __init__(self, tables: Tables, as_of: dt.datetime, priors: ps.Priors):
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


class TableRows(beam.PTransform):
    """The touched tags (every tag of the night's events and of the states its changes replace) →
    ``rows``: (key, RowSnapshot), ``day_priors``: (key, DayPriors) and ``counts`` (``table_rows``)
    of the rows the run reads. A nightly: the touched tags and the rows with hour cells since the
    day before its last recorded run, by batched point reads; a full rebuild: every row (key ranges
    in parallel), since it resets every row with count cells."""

    def __init__(self, tables: Tables, as_of: dt.datetime, priors: ps.Priors, *, fresh: bool):
        super().__init__()
        self.tables, self.as_of, self.priors, self.fresh = tables, as_of, priors, fresh

    def expand(self, touched):
        rows, day_priors = self._read(touched)
        return {"rows": rows, "day_priors": day_priors,
                COUNTS: rows | "CountRows" >> beam.Map(count_as("table_rows"))}

    def _read(self, touched):
        p, tables, as_of, priors = touched.pipeline, self.tables, self.as_of, self.priors
        if not tables.counts_exist:
            empty = p | "NoTable" >> beam.Create([])
            return empty, empty
        ranges = (p
                  | "Once" >> beam.Create([None])
                  | "KeyRanges" >> beam.ParDo(KeyRangesFn(tables.project, tables.instance, tables.counts))
                  | "SpreadRanges" >> beam.Reshuffle())
        if self.fresh:
            rows = ranges | "ReadRows" >> beam.ParDo(ReadRowsFn(tables.project, tables.instance, tables.counts,
                                                                as_of, priors)).with_outputs(DAYS, main="rows")
            return rows.rows, rows[DAYS]
        since = layout.midnight_utc(priors.last) - dt.timedelta(days=1) if priors.last else layout.EPOCH
        pending = ranges | "PendingHours" >> beam.ParDo(PendingKeysFn(tables, since, as_of))
        rows = ((touched, pending)
                | "TagsToRead" >> beam.Flatten()
                | "DistinctTags" >> beam.Distinct()  # a touched tag may also have pending hours
                | "BatchTags" >> beam.BatchElements(min_batch_size=TAG_ROWS_BATCH[0],
                                                    max_batch_size=TAG_ROWS_BATCH[1])
                | "ReadTagRows" >> beam.ParDo(ReadTagRowsFn(tables, as_of, priors)).with_outputs(DAYS, main="rows"))
        return rows.rows, rows[DAYS]
