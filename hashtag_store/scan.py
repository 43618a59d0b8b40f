"""Parallel reads of the ``hashtags`` table's count cells, split over the key space.

The reconciliation needs every row's count cells (the over-count check and the drift report): it
asks for the key ranges (:meth:`CountRowsReader.key_ranges`, from ``SampleRowKeys`` plus fixed split
points), spreads them over the workers, and each worker reads its ranges
(:meth:`CountRowsReader.read_range`). ``SampleRowKeys`` gives one key per tablet (hundreds of MB
each on real Bigtable, one on the emulator), too coarse for a table of small rows, so the key
space is also cut at fixed points where normalised tag keys are dense (digits, ``_``, each ASCII
letter, the UTF-8 lead bytes of the main scripts); an empty range costs one short RPC.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence

from google.cloud.bigtable.data import BigtableDataClient, ReadRowsQuery, RowRange
from google.cloud.bigtable.data import row_filters as rf

from hashtag_store.bigtable import _column, _hour_columns
from hashtags import layout
from hashtags.layout import Cell

DEFAULT_SPLITS: tuple[bytes, ...] = (
    b"0", b"5", b"_", *(bytes([c]) for c in range(ord("a"), ord("z") + 1)),
    b"\xc0", b"\xd0", b"\xd8", b"\xe0", b"\xe3", b"\xe4", b"\xe6", b"\xe8", b"\xea", b"\xf0",
)
# Every base version (the run needs the newest before its M, not just the newest) and every hour
# cell of every count generation. Nothing else of the row.
COUNT_CELLS_FILTER = rf.RowFilterUnion([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _hour_columns()])


def count_and_day_cells_filter(before) -> rf.RowFilter:
    """COUNT_CELLS_FILTER + the newest cell before ``before`` (a run's M) of every ``days`` column:
    the priors of the run's per-day cells (hashtags/day_cells.py), in the same range scan."""
    days = rf.RowFilterChain([rf.FamilyNameRegexFilter(layout.FAMILY_DAYS),
                              rf.TimestampRangeFilter(start=layout.EPOCH, end=layout.cell_time(before)),
                              rf.CellsColumnLimitFilter(1)])
    return rf.RowFilterUnion([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _hour_columns(), days])


class KeyRange(NamedTuple):
    start: bytes  # inclusive; b"" = the first key
    end: bytes  # exclusive; b"" = past the last key


class CountRow(NamedTuple):
    key: str
    bases: list[Cell]  # every kept version of counts:base
    hours: list[Cell]  # the hour cells of every generation
    days: tuple[tuple[bytes, Cell], ...] = ()  # (qualifier, cell) before M, with ``days_before`` only


def ranges_from_splits(splits: Sequence[bytes]) -> list[KeyRange]:
    """Contiguous ranges covering the whole key space, cut at the (deduplicated, sorted) splits."""
    points = sorted({s for s in splits if s})
    bounds = [b"", *points, b""]
    return [KeyRange(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


class CountRowsReader:
    """One table's count rows, range by range (data client; one per worker)."""

    def __init__(self, project: str, instance: str, table: str, *, operation_timeout: float = 1800.0,
                 days_before=None):
        """``days_before``: a run's M; the rows' ``days`` cells before it are read too (CountRow.days)."""
        self._client = BigtableDataClient(project=project)
        self._table = self._client.get_table(instance, table)
        self._timeout = operation_timeout
        self._filter = COUNT_CELLS_FILTER if days_before is None else count_and_day_cells_filter(days_before)

    def key_ranges(self, extra_splits: Sequence[bytes] = DEFAULT_SPLITS) -> list[KeyRange]:
        samples = [key for key, _offset in self._table.sample_row_keys()]
        return ranges_from_splits([*samples, *extra_splits])

    def read_range(self, r: KeyRange) -> Iterator[CountRow]:
        query = ReadRowsQuery(row_ranges=RowRange(start_key=r.start or None, end_key=r.end or None),
                              row_filter=self._filter)
        for row in self._table.read_rows_stream(query, operation_timeout=self._timeout):
            bases, hours, days = [], [], []
            for c in row.cells:
                if c.family == layout.FAMILY_DAYS:
                    days.append((c.qualifier, Cell(c.value, c.timestamp_micros // 1000)))
                if c.family != layout.FAMILY_COUNTS:
                    continue
                if c.qualifier == layout.COL_BASE:
                    bases.append(Cell(c.value, c.timestamp_micros // 1000))
                elif layout.is_hour_column(c.qualifier):
                    hours.append(Cell(c.value, c.timestamp_micros // 1000))
            yield CountRow(row.row_key.decode("utf-8"), bases, hours, tuple(days))

    def close(self) -> None:
        self._client.close()

