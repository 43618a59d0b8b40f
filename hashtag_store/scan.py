"""Reads of the ``hashtags`` table's count cells for the reconciliation.

* :class:`TagRowsReader` — the rows of the tags a night touched, by key: ONE multi-key ``ReadRows``
  per batch (the page read's raw-gRPC ``_RowReader``), what a nightly run reads.
* :meth:`CountRowsReader.pending_keys` — the keys of the rows with an hour cell in a time range (a
  server-side filter: only those keys come back, without values): the tags the streaming job
  counted since the last run, which a night resets even when the archive holds none of their
  events (deliveries it lost). Bigtable still walks the table's rows for this filter; an index
  kept by the streaming job would spare that (docs/RECONCILIATION.md).
* :meth:`CountRowsReader.read_range` — every row of a key range: the full rebuild only (it resets
  every row with count cells).

A full scan asks for the key ranges (:meth:`CountRowsReader.key_ranges`, from ``SampleRowKeys`` plus fixed split
points), spreads them over the workers, and each worker reads its ranges
(:meth:`CountRowsReader.read_range`). ``SampleRowKeys`` gives one key per tablet (hundreds of MB
each on real Bigtable, one on the emulator), too coarse for a table of small rows, so the key
space is also cut at fixed points where normalised tag keys are dense (digits, ``_``, each ASCII
letter, the UTF-8 lead bytes of the main scripts); an empty range costs one short RPC.
"""
from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple, Sequence

from google.cloud.bigtable.data import BigtableDataClient, ReadRowsQuery, RowRange
from google.cloud.bigtable.data import row_filters as rf

from hashtag_store.bigtable import _column, _hour_columns, _RowReader
from hashtags import layout
from hashtags.layout import Cell

DEFAULT_SPLITS: tuple[bytes, ...] = (
    b"0", b"5", b"_", *(bytes([c]) for c in range(ord("a"), ord("z") + 1)),
    b"\xc0", b"\xd0", b"\xd8", b"\xe0", b"\xe3", b"\xe4", b"\xe6", b"\xe8", b"\xea", b"\xf0",
)
# Every base version (the run needs the newest before its M, not just the newest) and every hour
# cell of every count generation. Nothing else of the row.
COUNT_CELLS_FILTER = rf.RowFilterUnion([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _hour_columns()])


DAY_VERSIONS_READ = 5
"""Versions of each ``days`` column read before M: the newest one a recorded run wrote is the prior
(hashtags/day_cells.py), under those of up to four unrecorded attempts since."""


def count_and_day_cells_filter(before) -> rf.RowFilter:
    """COUNT_CELLS_FILTER + the newest ``DAY_VERSIONS_READ`` cells before ``before`` (a run's M) of
    every ``days`` column: the priors of the run's per-day cells (hashtags/day_cells.py), in the same
    read."""
    days = rf.RowFilterChain([rf.FamilyNameRegexFilter(layout.FAMILY_DAYS),
                              rf.TimestampRangeFilter(start=layout.EPOCH, end=layout.cell_time(before)),
                              rf.CellsColumnLimitFilter(DAY_VERSIONS_READ)])
    return rf.RowFilterUnion([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _hour_columns(), days])


class KeyRange(NamedTuple):
    start: bytes  # inclusive; b"" = the first key
    end: bytes  # exclusive; b"" = past the last key


class CountRow(NamedTuple):
    key: str
    bases: list[Cell]  # every kept version of counts:base
    hours: list[Cell]  # the hour cells of every generation
    days: tuple[tuple[bytes, Cell], ...] = ()  # (qualifier, cell) before M, with ``days_before`` only


def count_row(key: bytes, cells: Iterable[tuple[str, bytes, int, bytes]]) -> CountRow:
    """A row's (family, qualifier, timestamp µs, value) cells → its CountRow."""
    bases, hours, days = [], [], []
    for family, qualifier, ts_us, value in cells:
        if family == layout.FAMILY_DAYS:
            days.append((qualifier, Cell(value, ts_us // 1000)))
        elif family == layout.FAMILY_COUNTS:
            if qualifier == layout.COL_BASE:
                bases.append(Cell(value, ts_us // 1000))
            elif layout.is_hour_column(qualifier):
                hours.append(Cell(value, ts_us // 1000))
    return CountRow(key.decode("utf-8"), bases, hours, tuple(days))


class TagRowsReader:
    """The count and day cells of given tags (days: before ``before``, a run's M), one ReadRows per
    batch. One per worker (DoFn setup); thread-safe. ``app_profile``: the writers' single-cluster
    profile in production."""

    def __init__(self, project: str, instance: str, table: str, *, before, app_profile: str | None = None,
                 operation_timeout: float = 120.0):
        self._reader = _RowReader(project, instance, table, count_and_day_cells_filter(before),
                                  app_profile=app_profile, operation_timeout=operation_timeout,
                                  attempt_timeout=operation_timeout / 4)

    def read_rows(self, keys: Sequence[str]) -> list[CountRow]:
        rows = self._reader.read_many([layout.row_key(k) for k in keys])
        return [count_row(key, cells) for key, cells in rows.items()]

    def close(self) -> None:
        self._reader.close()


def ranges_from_splits(splits: Sequence[bytes]) -> list[KeyRange]:
    """Contiguous ranges covering the whole key space, cut at the (deduplicated, sorted) splits."""
    points = sorted({s for s in splits if s})
    bounds = [b"", *points, b""]
    return [KeyRange(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


class CountRowsReader:
    """One table's count rows, range by range (data client; one per worker)."""

    def __init__(self, project: str, instance: str, table: str, *, operation_timeout: float = 1800.0,
                 days_before=None, app_profile: str | None = None):
        """``days_before``: a run's M; the rows' ``days`` cells before it are read too (CountRow.days)."""
        self._client = BigtableDataClient(project=project)
        self._table = self._client.get_table(instance, table, app_profile_id=app_profile)
        self._timeout = operation_timeout
        self._filter = COUNT_CELLS_FILTER if days_before is None else count_and_day_cells_filter(days_before)

    def key_ranges(self, extra_splits: Sequence[bytes] = DEFAULT_SPLITS) -> list[KeyRange]:
        samples = [key for key, _offset in self._table.sample_row_keys()]
        return ranges_from_splits([*samples, *extra_splits])

    def read_range(self, r: KeyRange) -> Iterator[CountRow]:
        query = ReadRowsQuery(row_ranges=RowRange(start_key=r.start or None, end_key=r.end or None),
                              row_filter=self._filter)
        for row in self._table.read_rows_stream(query, operation_timeout=self._timeout):
            yield count_row(row.row_key, ((c.family, c.qualifier, c.timestamp_micros, c.value) for c in row.cells))

    def pending_keys(self, r: KeyRange, since, before) -> Iterator[str]:
        """Keys of the rows in ``r`` with an hour cell (any generation) in [since, before)."""
        only = rf.RowFilterChain([_hour_columns(),
                                  rf.TimestampRangeFilter(start=layout.cell_time(since), end=layout.cell_time(before)),
                                  rf.CellsRowLimitFilter(1), rf.StripValueTransformerFilter(True)])
        query = ReadRowsQuery(row_ranges=RowRange(start_key=r.start or None, end_key=r.end or None), row_filter=only)
        for row in self._table.read_rows_stream(query, operation_timeout=self._timeout):
            yield row.row_key.decode("utf-8")

    def close(self) -> None:
        self._client.close()

