"""Bigtable adapter: table creation (the one place GC rules are applied), page reads, writes.

Reads a page document in ONE ``ReadRows`` call with an interleave filter that returns only the cells
the total rule needs. Works against real Bigtable and the emulator (``BIGTABLE_EMULATOR_HOST``).

The page read (``read_page``/``ping``) is the web service's hot path and does not go through the
data client: it calls the generated ``ReadRows`` method on a plain gRPC channel with a pre-serialised
request and merges the response chunks itself (:class:`_RowReader`). Measured against the emulator
on this project's 2-core machine: ~0.5 ms of client CPU per read, against ~2.2 ms for
``BigtableDataClient.read_row`` (retry wrappers, metrics, proto-plus conversions, a thread hand-off
per streamed message) — see docs/BENCHMARKS.md "HTTP serving".
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import random
import threading
import time
from typing import Callable, Iterable, Iterator, Sequence

import grpc
from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from google.api_core.retry import Retry
from google.cloud import bigtable
from google.cloud.bigtable import column_family
from google.cloud.bigtable.data import BigtableDataClient, ReadRowsQuery
from google.cloud.bigtable.data import row_filters as rf
from google.cloud.bigtable.data.row import Row
from google.cloud.bigtable.row import DirectRow
from google.cloud.bigtable.table import DEFAULT_RETRY
from google.api_core.gapic_v1 import routing_header
from google.cloud.bigtable_v2.services.bigtable.transports.grpc import BigtableGrpcTransport
from google.cloud.bigtable_v2.types import ReadRowsRequest, ReadRowsResponse, RowFilter

from hashtag_store import mutations
from hashtags import layout, post_state, trends
from hashtags.layout import Cell, GcRule, PageDocument
from hashtags.messages import TopPostsUpdate

log = logging.getLogger(__name__)


_WRITE_RETRY = DEFAULT_RETRY.with_deadline(60)


class StoreUnavailable(RuntimeError):
    """Bigtable did not answer (outage, timeout, permission): callers answer 503, never crash."""


class SharedFailure(StoreUnavailable):
    """The read shared a batched call that failed; that call's own read reports the failure (the
    circuit breaker counts failed RPCs, not the pages waiting on them)."""


def gc_rule_for(rule: GcRule) -> column_family.GarbageCollectionRule:
    parts: list[column_family.GarbageCollectionRule] = []
    if rule.max_versions is not None:
        parts.append(column_family.MaxVersionsGCRule(rule.max_versions))
    if rule.max_age_days is not None:
        parts.append(column_family.MaxAgeGCRule(dt.timedelta(days=rule.max_age_days)))
    if not parts:
        raise ValueError("a GC rule needs max_versions or max_age_days")
    return parts[0] if len(parts) == 1 else column_family.GCRuleIntersection(parts)


def create_table(project: str, instance: str, table: str, *, exist_ok: bool = True,
                 column_families: dict[str, GcRule] | None = None) -> None:
    """Create the table with its column families and GC rules (``column_families``, default
    layout.COLUMN_FAMILIES: the ``hashtags`` table; hashtags.post_state.COLUMN_FAMILIES for
    ``post_state``, see :func:`create_post_state_table`).

    Uses ``Client(admin=True)``'s table admin, which honours ``BIGTABLE_EMULATOR_HOST``. Terraform
    declares the same families and rules for production (checked by a unit test)."""
    client = bigtable.Client(project=project, admin=True)
    tbl = client.instance(instance).table(table)
    families = {name: gc_rule_for(rule) for name, rule in (column_families or layout.COLUMN_FAMILIES).items()}
    try:
        tbl.create(column_families=families)
    except gexc.AlreadyExists:
        if not exist_ok:
            raise
        existing = tbl.list_column_families()
        for name, rule in families.items():
            if name not in existing:
                tbl.column_family(name, gc_rule=rule).create()


def create_post_state_table(project: str, instance: str, table: str, *, exist_ok: bool = True) -> None:
    """The reconciliation's ``post_state`` table (hashtags/post_state.py), same rules as above."""
    create_table(project, instance, table, exist_ok=exist_ok, column_families=post_state.COLUMN_FAMILIES)


def table_exists(project: str, instance: str, table: str) -> bool:
    return bigtable.Client(project=project, admin=True).instance(instance).table(table).exists()


def _column(family: str, qualifier: bytes) -> rf.ColumnRangeFilter:
    return rf.ColumnRangeFilter(family, start_qualifier=qualifier, end_qualifier=qualifier)


def _hour_columns(prefix: bytes = layout.HOUR_PREFIX) -> rf.ColumnRangeFilter:
    """Every ``counts:h.<gen>`` column, whatever the generation: qualifiers in [``h.``, ``h/``)
    (``/`` is the byte after ``.``). Anything else in that range is dropped by is_hour_column.
    With ``prefix=ACCOUNTS_PREFIX``, the live-accounts columns ``counts:u.<gen>`` the same way."""
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    return rf.ColumnRangeFilter(layout.FAMILY_COUNTS, start_qualifier=prefix, end_qualifier=end,
                                inclusive_end=False)


_LATEST = rf.CellsColumnLimitFilter(1)
# ONE row read returns exactly what the page needs: the newest base, every hour cell of every count
# generation (the total rule picks those at/after the base), the newest top list and display spelling.
# Page v2 adds, in the same read: the newest version of every days column (history), the newest
# meta:related and meta:flags.
PAGE_FILTER = rf.RowFilterUnion([
    rf.RowFilterChain([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _LATEST]),
    _hour_columns(),
    _hour_columns(layout.ACCOUNTS_PREFIX),
    rf.RowFilterChain([_column(layout.FAMILY_TOP, layout.COL_TOP_POSTS), _LATEST]),
    rf.RowFilterChain([_column(layout.FAMILY_META, layout.COL_DISPLAY), _LATEST]),
    rf.RowFilterChain([rf.ColumnRangeFilter(layout.FAMILY_DAYS), _LATEST]),  # the whole family
    rf.RowFilterChain([_column(layout.FAMILY_META, layout.COL_RELATED), _LATEST]),
    rf.RowFilterChain([_column(layout.FAMILY_META, layout.COL_FLAGS), _LATEST]),
])
FLAGS_FILTER = rf.RowFilterChain([_column(layout.FAMILY_META, layout.COL_FLAGS), _LATEST])
TRENDS_FILTER = rf.RowFilterChain([_column(layout.FAMILY_META, layout.COL_TRENDS), _LATEST])
COUNTS_FILTER = rf.RowFilterUnion([
    rf.RowFilterChain([_column(layout.FAMILY_COUNTS, layout.COL_BASE), _LATEST]),
    _hour_columns(),
])


class InvalidChunk(ValueError):
    """The ReadRows response broke the chunk protocol (a server or emulator bug)."""


_PING_KEY = b"\x00readyz"
_PING_FILTER = rf.RowFilterChain([rf.CellsRowLimitFilter(1), rf.StripValueTransformerFilter(True)])
# GoogleAuthError: no usable credentials when the page reader's channel is first created.
_UNAVAILABLE = (gexc.GoogleAPIError, grpc.RpcError, ConnectionError, TimeoutError, InvalidChunk, GoogleAuthError)


def _cells(row: Row, family: str, qualifier: bytes) -> list[Cell]:
    return [Cell(c.value, c.timestamp_micros // 1000) for c in row.cells
            if c.qualifier == qualifier and c.family == family]


def _hour_cells(row: Row) -> list[Cell]:
    """The hour cells of every count generation."""
    return [Cell(c.value, c.timestamp_micros // 1000) for c in row.cells
            if c.family == layout.FAMILY_COUNTS and layout.is_hour_column(c.qualifier)]


def _first(cells: list[Cell]) -> Cell | None:
    return max(cells, key=lambda c: c.timestamp_ms) if cells else None


def document_from_row(key: str, row: Row) -> PageDocument:
    return layout.page_document(
        key,
        base=_first(_cells(row, layout.FAMILY_COUNTS, layout.COL_BASE)),
        hours=_hour_cells(row),
        top=_first(_cells(row, layout.FAMILY_TOP, layout.COL_TOP_POSTS)),
        display=_first(_cells(row, layout.FAMILY_META, layout.COL_DISPLAY)),
        days=[(c.qualifier, Cell(c.value, c.timestamp_micros // 1000)) for c in row.cells
              if c.family == layout.FAMILY_DAYS],
        related=_first(_cells(row, layout.FAMILY_META, layout.COL_RELATED)),
        flags=_first(_cells(row, layout.FAMILY_META, layout.COL_FLAGS)),
        accounts=[Cell(c.value, c.timestamp_micros // 1000) for c in row.cells
                  if c.family == layout.FAMILY_COUNTS and layout.is_accounts_column(c.qualifier)],
    )


def is_page(cells: Iterable[tuple[str, bytes, int, bytes]]) -> bool:
    """A row is a page when it has a count, top-posts or display cell: a row holding only
    meta:flags (a tag hidden before anyone used it, then cleared) is not a tag page."""
    return any(family in (layout.FAMILY_COUNTS, layout.FAMILY_TOP)
               or (family == layout.FAMILY_META and qualifier == layout.COL_DISPLAY)
               for family, qualifier, _ts, _value in cells)


# ---- the page read: one ReadRows call on a raw gRPC stub ----------------------------------------
_READ_ROWS = "/google.bigtable.v2.Bigtable/ReadRows"
_RequestPb = ReadRowsRequest.pb()
_ResponsePb = ReadRowsResponse.pb()
# Retried like the data client's read_rows: transient codes only, within the operation deadline.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
_MAX_MESSAGE = 256 * 1024 * 1024  # a Bigtable row may be up to 256 MB
# Unary-stream calls run on the calling thread (the default hands every streamed message over
# from gRPC's channel thread: ~0.3 ms of CPU and two context switches per read).
_CHANNEL_OPTIONS = (
    (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_rows_request(template: bytes, keys: Sequence[bytes]) -> bytes:
    """``template`` (a serialised ReadRowsRequest without ``rows``) + ``rows { row_keys: k … }``.

    Serialised protobuf messages concatenate as a merge, so this is the request for those row keys,
    without building a message per call (checked against the protobuf library by a test)."""
    row_set = b"".join([b"\x0a" + _varint(len(k)) + k for k in keys])  # RowSet.row_keys = 1 (bytes)
    return template + b"\x12" + _varint(len(row_set)) + row_set  # ReadRowsRequest.rows = 2


Cells = list[tuple[str, bytes, int, bytes]]  # (family, qualifier, timestamp_micros, value)


def merge_rows(responses: Iterable) -> list[tuple[bytes, Cells]]:
    """Merge ReadRowsResponse chunks into rows, following the ReadRows protocol: the row key and
    family/qualifier are carried over from the previous chunk, a value may be split over chunks
    announced by ``value_size``, ``reset_row`` drops the row so far, ``commit_row`` ends it.
    Returns every committed row as ``(row_key, [(family, qualifier, timestamp_micros, value)])``.
    Consumes the whole stream (so the call ends normally, not by a cancellation)."""
    rows: list[tuple[bytes, Cells]] = []
    key = family = None
    qualifier = b""
    ts = 0
    cells: Cells = []
    parts: list[bytes] | None = None  # pieces of a value split over chunks
    for resp in responses:
        for c in resp.chunks:
            if c.reset_row:
                if c.row_key or c.HasField("family_name") or c.HasField("qualifier") or c.value or c.value_size:
                    raise InvalidChunk("a reset chunk carries data")
                if key is None:
                    raise InvalidChunk("reset outside a row")
                key = family = None
                qualifier, ts, cells, parts = b"", 0, [], None
                continue
            if c.row_key:
                if key is not None and c.row_key != key:
                    raise InvalidChunk("a new row started before the previous one was committed")
                if key is None and rows and c.row_key <= rows[-1][0]:
                    raise InvalidChunk("row keys out of order")
                key = c.row_key
            elif key is None:
                raise InvalidChunk("first chunk of a row has no row key")
            if parts is None:  # a new cell (a continuation chunk repeats nothing)
                if c.HasField("family_name"):
                    family = c.family_name.value
                    if not c.HasField("qualifier"):
                        raise InvalidChunk("a new family without a qualifier")
                if c.HasField("qualifier"):
                    qualifier = c.qualifier.value
                ts = c.timestamp_micros
                if family is None:
                    raise InvalidChunk("a cell without a family")
            if c.value_size > 0:  # a split value: more chunks follow
                if parts is None:
                    parts = []
                parts.append(c.value)
            else:
                value = c.value if parts is None else b"".join([*parts, c.value])
                parts = None
                cells.append((family, qualifier, ts, value))
            if c.commit_row:
                if parts is not None:
                    raise InvalidChunk("row committed inside a split value")
                rows.append((key, cells))
                key = family = None
                qualifier, ts, cells = b"", 0, []
    if key is not None:
        raise InvalidChunk("the stream ended inside a row")
    return rows


# Channel lifetime, as python-bigtable's data client (google-cloud-bigtable 2.50.2,
# google/cloud/bigtable/data/_async/client.py ``_manage_channel``): Bigtable closes a channel after
# about an hour, so the client builds a new channel every uniform(35, 45) minutes, warms it (its
# ``PingAndWarm`` RPC per instance, ``wait_for_ready=True``), swaps it in, and closes the old one
# after a 10-minute grace period for the calls still on it.
REFRESH_MIN_SECONDS = 35 * 60.0
REFRESH_MAX_SECONDS = 45 * 60.0
GRACE_SECONDS = 10 * 60.0
RETRY_WARM_SECONDS = 60.0  # a new channel that could not be warmed: keep the old one, try again then


def _new_grpc_channel() -> grpc.Channel:
    emulator = os.environ.get("BIGTABLE_EMULATOR_HOST")
    if emulator:
        return grpc.insecure_channel(emulator, options=_CHANNEL_OPTIONS)
    # application default credentials, like the data client
    return BigtableGrpcTransport.create_channel("bigtable.googleapis.com:443", options=list(_CHANNEL_OPTIONS))


class _Channel:
    """The gRPC channel of one process's reads, replaced before the server closes it (the data
    client's schedule above). Unlike the data client, the refresh is driven from the read path: the
    first read after the refresh time starts a thread that builds and warms the new channel while
    reads go on over the old one; the swap is one assignment. On Cloud Run a timer thread would not
    run on time anyway (the CPU is throttled outside requests); a worker idle for an hour refreshes
    on its next read (readiness probes included) without waiting for it.

    Warm-up: ``warm(channel)`` (the store sends its readiness read on it: a ReadRows, which the
    emulator answers, where PingAndWarm would not be). ``clock`` and ``rand`` are injectable."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, rand: Callable[[float, float], float] = random.uniform,
                 create: Callable[[], grpc.Channel] = _new_grpc_channel):
        self._clock, self._rand, self._create = clock, rand, create
        self.warm: Callable[[grpc.Channel], object] | None = None
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._refresh_at = 0.0
        self._refreshing: threading.Thread | None = None
        self._retired: list[tuple[float, grpc.Channel]] = []  # (close at, channel)
        self.generation = 0  # channels swapped in so far (for tests and the log)

    def get(self) -> grpc.Channel:
        channel = self._channel
        if channel is None:
            with self._lock:
                if self._channel is None:
                    self._channel = self._create()
                    self._refresh_at = self._clock() + self._rand(REFRESH_MIN_SECONDS, REFRESH_MAX_SECONDS)
                    self.generation = 1
                return self._channel
        if self._clock() >= self._refresh_at:
            self._due()
        return channel

    def _due(self) -> None:
        with self._lock:
            now = self._clock()
            while self._retired and self._retired[0][0] <= now:
                self._retired.pop(0)[1].close()
            if now < self._refresh_at or self._refreshing is not None:
                return
            self._refreshing = threading.Thread(target=self._refresh, name="bigtable-channel-refresh", daemon=True)
            self._refreshing.start()

    def _refresh(self) -> None:
        new = None
        try:
            new = self._create()
            if self.warm is not None:
                self.warm(new)
        except Exception as e:  # noqa: BLE001 - the old channel serves on; retry later
            log.warning("bigtable channel refresh failed, keeping the current channel: %s", e)
            if new is not None:
                new.close()
            with self._lock:
                self._refresh_at = self._clock() + RETRY_WARM_SECONDS
                self._refreshing = None
            return
        with self._lock:
            old, self._channel = self._channel, new
            now = self._clock()
            if old is not None:
                self._retired.append((now + GRACE_SECONDS, old))
            self._refresh_at = now + self._rand(REFRESH_MIN_SECONDS, REFRESH_MAX_SECONDS)
            self.generation += 1
            self._refreshing = None
        log.info("bigtable channel refreshed (generation %d)", self.generation)

    def join_refresh(self, timeout: float | None = None) -> None:
        """Wait for a refresh in progress (tests)."""
        t = self._refreshing
        if t is not None:
            t.join(timeout)

    def close(self) -> None:
        self.join_refresh(5)
        with self._lock:
            for _, ch in self._retired:
                ch.close()
            self._retired.clear()
            if self._channel is not None:
                self._channel.close()
                self._channel = None


class _RowReader:
    """Reads rows of one table by key with ``ReadRows`` on a plain gRPC channel (thread-safe; one
    per process: gRPC channels do not survive fork()).

    Same request as the data client's ``read_row`` (table name, app profile, row filter, the row
    keys) and the same routing header; transient errors are retried with jittered backoff until
    ``operation_timeout``, each attempt bounded by ``attempt_timeout``. ``channel``: share another
    reader's (the store's page and readiness reads share one); default: its own."""

    def __init__(self, project: str, instance: str, table: str, row_filter: rf.RowFilter | None, *,
                 app_profile: str | None, operation_timeout: float, attempt_timeout: float,
                 channel: _Channel | None = None):
        table_name = f"projects/{project}/instances/{instance}/tables/{table}"
        request = _RequestPb(table_name=table_name, app_profile_id=app_profile or "")
        if row_filter is not None:
            request.filter.CopyFrom(RowFilter.pb(row_filter._to_pb()))
        self._template = request.SerializeToString()
        self._metadata = (routing_header.to_grpc_metadata({"table_name": table_name,
                                                           "app_profile_id": app_profile or ""}),)
        self.operation_timeout = operation_timeout
        self._attempt_timeout = attempt_timeout
        self._own_channel = channel is None
        self.channel = channel or _Channel()
        self._bound: tuple[grpc.Channel, object] | None = None  # (channel, its ReadRows multicallable)

    def _method(self, channel: grpc.Channel | None = None):
        ch = channel or self.channel.get()
        bound = self._bound
        if bound is not None and bound[0] is ch:
            return bound[1]
        call = ch.unary_stream(_READ_ROWS, request_serializer=None, response_deserializer=_ResponsePb.FromString)
        if channel is None:
            self._bound = (ch, call)
        return call

    def read_many(self, keys: Sequence[bytes], *, channel: grpc.Channel | None = None) -> dict[bytes, Cells]:
        """The cells of each of ``keys`` that exists (after the filter), in one ReadRows call (on
        ``channel`` if given: the warm-up of a new channel). Raises grpc.RpcError (non-retryable,
        or the last attempt's), TimeoutError or InvalidChunk."""
        call = self._method(channel)
        request = read_rows_request(self._template, sorted(set(keys)))
        deadline = time.monotonic() + self.operation_timeout
        delay = 0.01
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer within {self.operation_timeout}s")
            stream = call(request, timeout=min(self._attempt_timeout, remaining), metadata=self._metadata)
            try:
                return dict(merge_rows(stream))
            except grpc.RpcError as e:
                code = e.code() if callable(getattr(e, "code", None)) else None
                if code not in _RETRYABLE or deadline - time.monotonic() <= delay:
                    raise
            finally:
                stream.cancel()  # no-op once the stream has ended; frees it on an early exit
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 0.25)

    def read(self, key: bytes) -> Cells | None:
        return self.read_many([key]).get(key)

    def close(self) -> None:
        self._bound = None
        if self._own_channel:
            self.channel.close()


_QUEUED, _TAKEN, _LEAD, _DONE = range(4)


class BatchFailed(ConnectionError):
    """This read waited on a batched ReadRows call that failed: the call's failure is reported (to
    the circuit breaker: one failure per RPC) by the read that sent it, this one only shares it."""


class _Waiter:
    __slots__ = ("key", "state", "cells", "error", "event")

    def __init__(self, key: bytes):
        self.key = key
        self.state = _QUEUED
        self.cells: Cells | None = None
        self.error: BaseException | None = None
        self.event = threading.Event()


class _ReadCoalescer:
    """Point reads from many threads, coalesced into multi-row ReadRows calls (what the Java client's
    bulk-read batcher does), with up to ``max_in_flight`` calls at once: a read that finds a free
    slot sends its own call at once (no added latency when idle); reads arriving while every slot is
    busy queue up, and when a call returns, its slot goes to the first queued read, which sends ONE
    ReadRows for the queued keys (at most ``max_batch``). Each page is still one row read, with the
    same filter; under load the per-call cost is shared by the rows of a batch.

    A slow call holds one slot: reads go on over the others. A failed call fails the reads of its
    batch only; the read that sent it gets the error, the others :class:`BatchFailed` (so the
    breaker counts one failure per RPC, not one per waiting page). Bounded: a call by the reader's
    operation timeout; a queued read waits at most for a call ahead of it and its own."""

    def __init__(self, reader: _RowReader, max_batch: int = 64, max_in_flight: int = 2):
        self._reader = reader
        self._max_batch = max_batch
        self._max_in_flight = max(1, max_in_flight)
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._in_flight = 0
        self.calls = 0  # ReadRows calls sent (for tests and benchmarks)

    def read(self, key: bytes) -> Cells | None:
        w = _Waiter(key)
        with self._lock:
            if self._in_flight < self._max_in_flight:  # then nothing is queued: slots are handed over
                self._in_flight += 1
                w.state = _LEAD
            else:
                self._queue.append(w)
        # a call ahead of ours (bounded) + our own (bounded), with margin
        max_wait = 2 * self._reader.operation_timeout + 1.0
        while w.state != _LEAD:
            signalled = w.event.wait(max_wait)
            with self._lock:
                if w.state == _DONE:
                    if w.error is not None:
                        raise BatchFailed(f"batched read failed: {type(w.error).__name__}") from w.error
                    return w.cells
                if w.state == _QUEUED and not signalled:  # cannot happen while reads are bounded
                    self._queue.remove(w)
                    raise TimeoutError("queued read not sent in time")
                w.event.clear()
        return self._lead(w)

    def _lead(self, me: _Waiter) -> Cells | None:
        with self._lock:
            batch = [me, *self._queue[:self._max_batch - 1]]
            del self._queue[:self._max_batch - 1]
            for w in batch:
                w.state = _TAKEN
            self.calls += 1
        rows: dict[bytes, Cells] = {}
        error: BaseException | None = None
        try:
            rows = self._reader.read_many([w.key for w in batch])
        except BaseException as e:  # handed to every read of the batch; ours re-raises it below
            error = e
        nxt = None
        with self._lock:
            for w in batch:
                w.cells, w.error, w.state = rows.get(w.key), error, _DONE
            if self._queue:  # the slot goes to the first queued read
                nxt = self._queue.pop(0)
                nxt.state = _LEAD
            else:
                self._in_flight -= 1
        for w in batch:
            if w is not me:
                w.event.set()
        if nxt is not None:
            nxt.event.set()
        if error is not None:
            raise error
        return me.cells


def document_from_cells(key: str, cells: Cells) -> PageDocument:
    """The page document from the (family, qualifier, timestamp_micros, value) cells of one row
    read with PAGE_FILTER (same result as :func:`document_from_row` on the data client's Row)."""
    base = top = display = related = flags = None
    hours: list[Cell] = []
    accounts: list[Cell] = []
    days: list[tuple[bytes, Cell]] = []
    seen_qualifier, is_hour, is_accounts = None, False, False
    for family, qualifier, ts, value in cells:
        cell = Cell(value, ts // 1000)
        if family == layout.FAMILY_COUNTS:
            if qualifier != seen_qualifier:  # a column's versions arrive together: classify it once
                seen_qualifier, is_hour = qualifier, layout.is_hour_column(qualifier)
                is_accounts = not is_hour and layout.is_accounts_column(qualifier)
            if is_hour:
                hours.append(cell)
            elif is_accounts:
                accounts.append(cell)
            elif qualifier == layout.COL_BASE:
                base = _newer(base, cell)
        elif family == layout.FAMILY_DAYS:
            days.append((qualifier, cell))
        elif family == layout.FAMILY_TOP:
            if qualifier == layout.COL_TOP_POSTS:
                top = _newer(top, cell)
        elif family == layout.FAMILY_META:
            if qualifier == layout.COL_DISPLAY:
                display = _newer(display, cell)
            elif qualifier == layout.COL_RELATED:
                related = _newer(related, cell)
            elif qualifier == layout.COL_FLAGS:
                flags = _newer(flags, cell)
    return layout.page_document(key, base=base, hours=hours, top=top, display=display,
                                days=days, related=related, flags=flags, accounts=accounts)


def _newer(seen: Cell | None, cell: Cell) -> Cell:
    return cell if seen is None or cell.timestamp_ms > seen.timestamp_ms else seen


class BigtableStore:
    """One table of the layout in hashtags.layout. Thread-safe; create one per process (after fork).

    Page reads and pings go through :class:`_RowReader` (a plain gRPC ``ReadRows`` call, bounded
    by ``read_timeout`` in all, so an outage is a quick StoreUnavailable); scans through the data
    client (``BigtableDataClient``, created on first use); writes through the classic client's
    ``mutate_rows`` with the same ``DirectRow`` mutations Beam's ``WriteToBigTable`` applies."""

    def __init__(self, project: str, instance: str, table: str, *, app_profile: str | None = None,
                 read_timeout: float = 2.0, channel: _Channel | None = None, batches_in_flight: int = 2):
        self._project, self._instance, self._table_id = project, instance, table
        self._app_profile = app_profile
        self._read_timeout = read_timeout
        # ONE channel for the page reads and the readiness read, so /readyz sees what the pages see;
        # each new channel is warmed with the readiness read before it takes over (_Channel)
        self.channel = channel or _Channel()
        timeouts = {"app_profile": app_profile, "operation_timeout": read_timeout,
                    "attempt_timeout": read_timeout / 2, "channel": self.channel}
        self._page_reader = _RowReader(project, instance, table, PAGE_FILTER, **timeouts)
        self._pages = _ReadCoalescer(self._page_reader, max_in_flight=batches_in_flight)
        # readiness: a point read (no tag has this key); a missing row is an answer too
        self._ping_reader = _RowReader(project, instance, table, _PING_FILTER, **timeouts)
        self.channel.warm = lambda ch: self._ping_reader.read_many([_PING_KEY], channel=ch)
        self._trends_reader = _RowReader(project, instance, table, TRENDS_FILTER, **timeouts)
        self._data_client: BigtableDataClient | None = None
        self._data_lock = threading.Lock()
        self._writer = None  # classic client, created on first write

    @property
    def _reader(self):
        """The data client's table (scans), created on first use."""
        if self._data_client is None:
            with self._data_lock:
                if self._data_client is None:
                    self._data_client = BigtableDataClient(project=self._project)
        return self._data_client.get_table(self._instance, self._table_id, app_profile_id=self._app_profile)

    def close(self) -> None:
        self.channel.close()
        if self._data_client is not None:
            self._data_client.close()

    # ---- reads ----------------------------------------------------------------------------
    def read_page(self, key: str) -> PageDocument | None:
        """The page document for one normalised tag (ONE row read), or None if the row is not a
        page (no row, or no count/top/display cell: see :func:`is_page`)."""
        try:
            cells = self._pages.read(layout.row_key(key))
        except BatchFailed as e:
            raise SharedFailure(f"Bigtable read failed: {type(e.__cause__).__name__}") from e
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable read failed: {type(e).__name__}") from e
        return document_from_cells(key, cells) if cells is not None and is_page(cells) else None

    def read_pages(self, keys: Sequence[str]) -> dict[str, PageDocument]:
        """The page documents of several tags in ONE ReadRows call (the trends step's review and
        history of its candidates; a relaunched job's hour accounts of a tag it first sees)."""
        try:
            rows = self._page_reader.read_many([layout.row_key(k) for k in keys])
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable read failed: {type(e).__name__}") from e
        return {k.decode("utf-8"): document_from_cells(k.decode("utf-8"), cells)
                for k, cells in rows.items() if is_page(cells)}

    def read_trends(self) -> trends.TrendList:
        """The newest ranked list of the reserved trends row (ONE row read); empty when none."""
        try:
            cells = self._trends_reader.read(layout.TRENDS_ROW)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable read failed: {type(e).__name__}") from e
        newest = max(cells or [], key=lambda c: c[2], default=None)
        return trends.decode_trends(newest[3]) if newest is not None else trends.TrendList(None)

    def read_flags(self, key: str) -> layout.Flags:
        """The tag's newest moderation flags (Flags() when it has none)."""
        try:
            row = self._reader.read_row(layout.row_key(key), row_filter=FLAGS_FILTER,
                                        operation_timeout=self._read_timeout * 5)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable read failed: {type(e).__name__}") from e
        cell = None if row is None else _first(_cells(row, layout.FAMILY_META, layout.COL_FLAGS))
        return layout.decode_flags(cell.value) if cell is not None else layout.Flags()

    def hidden_tags(self) -> frozenset[str]:
        """Keys of every hidden tag: ONE row read of the index that ``write_flags`` keeps
        (layout.HIDDEN_INDEX_ROW), not a scan. The nightly job reads it once at launch."""
        try:
            row = self._reader.read_row(layout.HIDDEN_INDEX_ROW, row_filter=rf.RowFilterChain([
                rf.FamilyNameRegexFilter(layout.FAMILY_META), _LATEST]), operation_timeout=self._read_timeout * 5)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable read failed: {type(e).__name__}") from e
        if row is None:
            return frozenset()
        return frozenset(c.qualifier.decode("utf-8") for c in row.cells if c.value == b"1")

    def ping(self) -> None:
        """Readiness: one tiny read of the table (a missing row is fine: the table answered).
        Raises StoreUnavailable."""
        try:
            self._ping_reader.read(_PING_KEY)
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"Bigtable ping failed: {type(e).__name__}") from e

    def scan_totals(self) -> Iterator[tuple[str, int, dt.datetime | None]]:
        """Every row's (key, total, base as_of): what the pages show now. Used by the drift report."""
        try:
            for row in self._reader.read_rows_stream(ReadRowsQuery(row_filter=COUNTS_FILTER),
                                                     operation_timeout=600):
                base = _first(_cells(row, layout.FAMILY_COUNTS, layout.COL_BASE))
                total = layout.total_posts(base, _hour_cells(row))
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

    def write_hour_counts(self, counts: Iterable[tuple[str, dt.datetime, int, str | None]], *,
                          generation: int = 0) -> int:
        return self.mutate([mutations.hour_count_row(k, ts, n, d, generation=generation)
                            for k, ts, n, d in counts])

    def write_base_counts(self, counts: Iterable[tuple[str, int]], as_of: dt.datetime) -> int:
        return self.mutate([mutations.base_count_row(k, as_of, n) for k, n in counts])

    def write_top_posts(self, update: TopPostsUpdate) -> int:
        return self.mutate([mutations.top_posts_row(update)])

    def write_flags(self, key: str, flags: layout.Flags) -> layout.Flags:
        """Write the tag's moderation flags at ``flags.changed_at`` (now when None); returns what was
        written. A new cell per change: the newest one wins, earlier ones age out (meta keeps 1)."""
        if flags.changed_at is None:
            flags = dataclasses.replace(flags, changed_at=dt.datetime.now(dt.timezone.utc))
        self.mutate([mutations.flags_row(key, flags), mutations.hidden_index_row(key, flags)])
        return flags
