"""Bigtable adapter: table creation (the one place GC rules are applied), page reads, writes.

Reads a page document in ONE ``ReadRows`` call with an interleave filter that returns only the cells
the total rule needs. Works against real Bigtable and the emulator (``BIGTABLE_EMULATOR_HOST``).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Iterable, Iterator, Sequence

import grpc
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import bigtable
from google.cloud.bigtable import column_family
from google.cloud.bigtable.data import BigtableDataClient, ReadRowsQuery
from google.cloud.bigtable.data import row_filters as rf
from google.cloud.bigtable.data.row import Row
from google.cloud.bigtable.row import DirectRow
from google.cloud.bigtable.table import DEFAULT_RETRY

from hashtag_store import mutations
from hashtags import layout
from hashtags.layout import Cell, GcRule, PageDocument
from hashtags.messages import TopPostsUpdate

log = logging.getLogger(__name__)


_WRITE_RETRY = DEFAULT_RETRY.with_deadline(60)


class StoreUnavailable(RuntimeError):
    """Bigtable did not answer (outage, timeout, permission): callers answer 503, never crash."""


def gc_rule_for(rule: GcRule) -> column_family.GarbageCollectionRule:
    parts: list[column_family.GarbageCollectionRule] = []
    if rule.max_versions is not None:
        parts.append(column_family.MaxVersionsGCRule(rule.max_versions))
    if rule.max_age_days is not None:
        parts.append(column_family.MaxAgeGCRule(dt.timedelta(days=rule.max_age_days)))
    if not parts:
        raise ValueError("a GC rule needs max_versions or max_age_days")
    return parts[0] if len(parts) == 1 else column_family.GCRuleIntersection(parts)


def create_table(project: str, instance: str, table: str, *, exist_ok: bool = True) -> None:
    """Create the table with its column families and GC rules (layout.COLUMN_FAMILIES).

    Uses ``Client(admin=True)``'s table admin, which honours ``BIGTABLE_EMULATOR_HOST``. Terraform
    declares the same families and rules for production (checked by a unit test)."""
    client = bigtable.Client(project=project, admin=True)
    tbl = client.instance(instance).table(table)
    families = {name: gc_rule_for(rule) for name, rule in layout.COLUMN_FAMILIES.items()}
    try:
        tbl.create(column_families=families)
    except gexc.AlreadyExists:
        if not exist_ok:
            raise
        existing = tbl.list_column_families()
        for name, rule in families.items():
            if name not in existing:
                tbl.column_family(name, gc_rule=rule).create()


def _column(family: str, qualifier: bytes) -> rf.ColumnRangeFilter:
    return rf.ColumnRangeFilter(family, start_qualifier=qualifier, end_qualifier=qualifier)


_LATEST = rf.CellsColumnLimitFilter(1)
# ONE row read returns exactly what the page needs: the newest base, every hour cell (the total
# rule picks those at/after the base), the newest top list and display spelling.
PAGE_FILTER = rf.RowFilterUnion([
    rf.RowFilterChain([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _LATEST]),
    _column(layout.FAMILY_COUNTS, layout.COL_HOUR),
    rf.RowFilterChain([_column(layout.FAMILY_TOP, layout.COL_TOP_POSTS), _LATEST]),
    rf.RowFilterChain([_column(layout.FAMILY_META, layout.COL_DISPLAY), _LATEST]),
])
COUNTS_FILTER = rf.RowFilterUnion([
    rf.RowFilterChain([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _LATEST]),
    _column(layout.FAMILY_COUNTS, layout.COL_HOUR),
])
_UNAVAILABLE = (gexc.GoogleAPIError, grpc.RpcError, ConnectionError, TimeoutError)


def _cells(row: Row, family: str, qualifier: bytes) -> list[Cell]:
    return [Cell(c.value, c.timestamp_micros // 1000) for c in row.cells
            if c.qualifier == qualifier and c.family == family]


def _first(cells: list[Cell]) -> Cell | None:
    return max(cells, key=lambda c: c.timestamp_ms) if cells else None


def document_from_row(key: str, row: Row) -> PageDocument:
    return layout.page_document(
        key,
        base=_first(_cells(row, layout.FAMILY_COUNTS, layout.COL_BASE)),
        hours=_cells(row, layout.FAMILY_COUNTS, layout.COL_HOUR),
        top=_first(_cells(row, layout.FAMILY_TOP, layout.COL_TOP_POSTS)),
        display=_first(_cells(row, layout.FAMILY_META, layout.COL_DISPLAY)),
    )


class BigtableStore:
    """One table of the layout in hashtags.layout. Thread-safe; create one per process (after fork).

    Reads go through the data client (``BigtableDataClient``: bounded operation timeouts, so an
    outage is a quick StoreUnavailable); writes through the classic client's ``mutate_rows`` with
    the same ``DirectRow`` mutations Beam's ``WriteToBigTable`` applies."""

    def __init__(self, project: str, instance: str, table: str, *, app_profile: str | None = None,
                 read_timeout: float = 2.0):
        self._project, self._instance, self._table_id = project, instance, table
        self._data = BigtableDataClient(project=project)
        self._reader = self._data.get_table(instance, table, app_profile_id=app_profile)
        self._read_timeout = read_timeout
        self._writer = None  # classic client, created on first write

    def close(self) -> None:
        self._data.close()

    # ---- reads ----------------------------------------------------------------------------
    def read_page(self, key: str) -> PageDocument | None:
        """The page document for one normalised tag (ONE row read), or None if there is no row."""
        try:
            row = self._reader.read_row(layout.row_key(key), row_filter=PAGE_FILTER,
                                        operation_timeout=self._read_timeout,
                                        attempt_timeout=self._read_timeout / 2)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable read failed: {type(e).__name__}") from e
        return None if row is None else document_from_row(key, row)

    def ping(self) -> None:
        """Readiness: one tiny read of the table. Raises StoreUnavailable."""
        try:
            self._reader.read_rows(ReadRowsQuery(limit=1, row_filter=rf.StripValueTransformerFilter(True)),
                                   operation_timeout=self._read_timeout)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable ping failed: {type(e).__name__}") from e

    def scan_totals(self) -> Iterator[tuple[str, int, dt.datetime | None]]:
        """Every row's (key, total, base as_of): what the pages show now. Used by the drift report."""
        try:
            for row in self._reader.read_rows_stream(ReadRowsQuery(row_filter=COUNTS_FILTER),
                                                     operation_timeout=600):
                base = _first(_cells(row, layout.FAMILY_COUNTS, layout.COL_BASE))
                total = layout.total_posts(base, _cells(row, layout.FAMILY_COUNTS, layout.COL_HOUR))
                yield (row.row_key.decode("utf-8"), total,
                       layout.from_millis(base.timestamp_ms) if base else None)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable scan failed: {type(e).__name__}") from e

    # ---- writes ---------------------------------------------------------------------------
    def mutate(self, rows: Sequence[DirectRow], batch_size: int = 1000) -> int:
        """Apply rows in batches; raises StoreUnavailable if any row fails after retries."""
        written = 0
        for i in range(0, len(rows), batch_size):
            batch = rows[i:i + batch_size]
            try:
                statuses = self._classic_table().mutate_rows(batch, retry=_WRITE_RETRY, timeout=60)
            except _UNAVAILABLE as e:
                raise StoreUnavailable(f"Bigtable write failed: {type(e).__name__}: {e}") from e
            failed = [(r.row_key, s.message) for r, s in zip(batch, statuses) if s.code != 0]
            if failed:
                raise StoreUnavailable(f"{len(failed)} row mutations failed, first: {failed[0]!r}")
            written += len(batch)
        return written

    def _classic_table(self):
        if self._writer is None:
            client = bigtable.Client(project=self._project)
            self._writer = client.instance(self._instance).table(self._table_id)
        return self._writer

    def write_hour_counts(self, counts: Iterable[tuple[str, dt.datetime, int, str | None]]) -> int:
        return self.mutate([mutations.hour_count_row(k, ts, n, d) for k, ts, n, d in counts])

    def write_base_counts(self, counts: Iterable[tuple[str, int]], as_of: dt.datetime) -> int:
        return self.mutate([mutations.base_count_row(k, as_of, n) for k, n in counts])

    def write_top_posts(self, update: TopPostsUpdate) -> int:
        return self.mutate([mutations.top_posts_row(update)])
