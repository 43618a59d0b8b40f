"""The ``post_state`` table's I/O (layout and encoding: hashtags/post_state.py).

* :class:`PostStateReader` — the states of many posts as applied by the recorded runs
  (``hashtags.post_state.Priors``), in ONE ``ReadRows`` call per batch (row keys + a filter chain:
  column ``s:w``, timestamps up to the last recorded run's midnight, the kept versions; the newest
  one a recorded run wrote is picked here). The same raw-gRPC reader as the page read (``hashtag_store.bigtable._RowReader``), not
  Beam's ``Enrichment`` (one ``read_row`` per element, values decoded as UTF-8: LOCAL-GCP.md).
* :func:`state_row` / :func:`run_row` — the SetCells at the run's M (idempotent).
* :func:`run_records`, :func:`last_run`, :func:`write_run` — the run records in the reserved row.

Honours ``BIGTABLE_EMULATOR_HOST`` like the rest of the adapter.
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import grpc
from google.cloud.bigtable.data import row_filters as rf
from google.cloud.bigtable.row import DirectRow

from hashtag_store.bigtable import BigtableStore, _RowReader
from hashtags import layout, planning
from hashtags import post_state as ps

# The versions a run at M may read as applied: up to its last recorded run's midnight (so neither
# its own first attempt's cells nor a failed night's), every kept version, since the newest of them
# may be an unrecorded run's (picked in Python: ``Priors.newest_applied``).
def _state_filter(priors: ps.Priors) -> rf.RowFilter:
    return rf.RowFilterChain([
        rf.FamilyNameRegexFilter(ps.FAMILY),
        rf.ColumnQualifierRegexFilter(b"^" + ps.COL_WINNER + b"$"),
        rf.TimestampRangeFilter(start=layout.EPOCH, end=priors.end),
        rf.CellsColumnLimitFilter(ps.STATE_VERSIONS_KEPT),
    ])


_RUNS_FILTER = rf.RowFilterChain([rf.FamilyNameRegexFilter(ps.FAMILY), rf.CellsColumnLimitFilter(1)])


class PostStateReader:
    """States of posts as the recorded runs applied them (``priors``). One per worker (DoFn setup);
    thread-safe. ``app_profile``: the writers' single-cluster profile in production (DESIGN.md
    "Bigtable routing": read what the last run wrote); None locally."""

    def __init__(self, project: str, instance: str, table: str, priors: ps.Priors, *,
                 app_profile: str | None = None, operation_timeout: float = 120.0):
        self._priors = priors
        self._reader = _RowReader(project, instance, table, _state_filter(priors), app_profile=app_profile,
                                  operation_timeout=operation_timeout, attempt_timeout=operation_timeout / 4)

    def read_states(self, post_ids: Sequence[str]) -> dict[str, ps.PostState]:
        """post_id → its applied state, for those of ``post_ids`` that have one (one RPC)."""
        if self._priors.last is None:
            return {}
        rows = self._reader.read_many([ps.row_key(p) for p in post_ids])
        out = {}
        for key, cells in rows.items():
            cell = self._priors.newest_applied(
                (c for c in cells if c[0] == ps.FAMILY and c[1] == ps.COL_WINNER), timestamp_ms=lambda c: c[2] // 1000)
            if cell is not None:
                out[key.decode("utf-8")] = ps.decode_state(cell[3])
        return out

    def close(self) -> None:
        self._reader.close()


def state_row(post_id: str, state: ps.PostState, as_of: dt.datetime) -> DirectRow:
    row = DirectRow(ps.row_key(post_id))
    row.set_cell(ps.FAMILY, ps.COL_WINNER, ps.encode_state(state), timestamp=layout.cell_time(as_of))
    return row


def run_row(record: ps.RunRecord) -> DirectRow:
    row = DirectRow(ps.RUN_ROW)
    row.set_cell(ps.FAMILY, ps.run_column(record.as_of), ps.encode_run(record),
                 timestamp=layout.midnight_utc(record.as_of))
    return row


def run_records(project: str, instance: str, table: str, *, app_profile: str | None = None) -> list[ps.RunRecord]:
    """Every recorded run (one per as_of: a rerun overwrites its night's record). A missing table
    has none."""
    reader = _RowReader(project, instance, table, _RUNS_FILTER, app_profile=app_profile, operation_timeout=60.0,
                        attempt_timeout=20.0)
    try:
        cells = reader.read(ps.RUN_ROW)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return []
        raise
    finally:
        reader.close()
    return [ps.decode_run(value) for family, qualifier, _ts, value in (cells or [])
            if family == ps.FAMILY and qualifier.startswith(ps.RUN_PREFIX)]


def last_run(project: str, instance: str, table: str, *, before: dt.date | None = None) -> planning.LastRun | None:
    """The latest successful run (before ``before``, if given) for ``hashtags.planning.plan_nightly``."""
    record = ps.latest_run(run_records(project, instance, table), before=before)
    return record.last_run() if record else None


def write_run(project: str, instance: str, table: str, record: ps.RunRecord) -> None:
    """Record a run. Call only after every other write of the run succeeded."""
    store = BigtableStore(project, instance, table)
    try:
        store.mutate([run_row(record)])
    finally:
        store.close()
