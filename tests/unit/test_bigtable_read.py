"""The page read's own pieces, without an emulator: the pre-serialised ReadRows request and the chunk
merger, checked against the protobuf library and against the Bigtable data client's own merger."""
from __future__ import annotations

import datetime as dt
import threading
import time
from types import SimpleNamespace

import pytest
from google.cloud.bigtable.data._sync_autogen._read_rows import _ReadRowsOperation
from google.cloud.bigtable.data.exceptions import InvalidChunk as LibraryInvalidChunk
from hypothesis import given, settings
from hypothesis import strategies as st

from google.cloud.bigtable_v2.types import RowFilter

from hashtag_store.bigtable import (PAGE_FILTER, BatchFailed, InvalidChunk, _ReadCoalescer, _RequestPb, _ResponsePb,
                                    document_from_cells, is_page, merge_rows, read_rows_request)
from hashtags import layout
from hashtags.layout import TopPost

Chunk = _ResponsePb.CellChunk


@given(st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=5))
def test_request_bytes_equal_the_protobuf_message(keys):
    template = _RequestPb(table_name="projects/p/instances/i/tables/t", app_profile_id="web")
    from google.cloud.bigtable_v2.types import RowFilter

    template.filter.CopyFrom(RowFilter.pb(PAGE_FILTER._to_pb()))
    expected = _RequestPb()
    expected.CopyFrom(template)
    expected.rows.row_keys.extend(keys)
    got = _RequestPb.FromString(read_rows_request(template.SerializeToString(), keys))
    assert got == expected
    assert list(got.rows.row_keys) == keys


def _library_rows(responses):
    """The data client's merger (google-cloud-bigtable), fed the same chunks."""
    metric = SimpleNamespace(end_with_success=lambda: None, end_with_status=lambda *_: None, active_attempt=None)
    fake_op = SimpleNamespace(_operation_metric=metric)
    chunks = (c for r in responses for c in r.chunks)
    return [(row.row_key, [(c.family, c.qualifier, c.timestamp_micros, c.value) for c in row.cells])
            for row in _ReadRowsOperation.merge_rows(fake_op, chunks)]


CELL = st.tuples(st.sampled_from(["counts", "top", "meta"]), st.sampled_from([b"h.0", b"h.12", b"h", b"base", b"posts", b""]),
                 st.integers(0, 2**50), st.binary(max_size=40))


def _chunks_for_row(key, cells, split_points, draw):
    """Chunks of one row as a server may send them: family/qualifier only when they change,
    values split at arbitrary points."""
    out = []
    prev_fam = prev_q = None
    for i, (fam, q, ts, value) in enumerate(cells):
        pieces = [value]
        cut = split_points[i % len(split_points)] if split_points else 0
        if 0 < cut < len(value):
            pieces = [value[:cut], value[cut:]]
        for j, piece in enumerate(pieces):
            c = Chunk()
            if i == 0 and j == 0:
                c.row_key = key
            if j == 0:
                if fam != prev_fam:
                    c.family_name.value = fam
                    c.qualifier.value = q
                elif q != prev_q or draw(st.booleans()):
                    c.qualifier.value = q
                c.timestamp_micros = ts
            c.value = piece
            if j < len(pieces) - 1:
                c.value_size = len(value)
            out.append(c)
        prev_fam, prev_q = fam, q
    out[-1].commit_row = True
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_merger_agrees_with_the_data_client(data):
    keys = sorted(data.draw(st.sets(st.binary(min_size=1, max_size=20), min_size=1, max_size=3)))
    chunks, expected_values = [], []
    for key in keys:
        if data.draw(st.booleans()):  # a row the server started, then reset
            partial = _chunks_for_row(key, data.draw(st.lists(CELL, min_size=1, max_size=3)), [2], data.draw)
            partial[-1].commit_row = False
            reset = Chunk()
            reset.reset_row = True
            chunks += partial + [reset]
        cells = data.draw(st.lists(CELL, min_size=1, max_size=6))
        chunks += _chunks_for_row(key, cells, data.draw(st.lists(st.integers(0, 40), max_size=4)), data.draw)
        expected_values.append([c[3] for c in cells])
    # any grouping of the chunks into responses
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(chunks) - 1)), max_size=4))))
    responses, start = [], 0
    for cut in [*cuts, len(chunks)]:
        if cut > start:
            responses.append(_ResponsePb(chunks=chunks[start:cut]))
            start = cut
    expected = _library_rows(responses)
    assert [k for k, _ in expected] == keys
    assert merge_rows(responses) == expected
    assert [[c[3] for c in cells] for _, cells in expected] == expected_values


def test_no_row_is_empty():
    assert merge_rows([]) == []
    assert merge_rows([_ResponsePb(last_scanned_row_key=b"x")]) == []


@pytest.mark.parametrize("bad", [
    [Chunk(family_name={"value": "f"}, qualifier={"value": b"q"}, value=b"v", commit_row=True)],  # no key
    [Chunk(row_key=b"k", family_name={"value": "f"}, qualifier={"value": b"q"}, value=b"v")],  # no commit
    [Chunk(row_key=b"k", qualifier={"value": b"q"}, value=b"v", commit_row=True)],  # no family
    [Chunk(row_key=b"k", family_name={"value": "f"}, qualifier={"value": b"q"}, value=b"v", value_size=3,
           commit_row=True)],  # committed inside a split value
    [Chunk(row_key=b"k", family_name={"value": "f"}, qualifier={"value": b"q"}, value=b"v"),
     Chunk(reset_row=True, value=b"x")],  # reset with data
])
def test_protocol_violations_raise(bad):
    with pytest.raises(InvalidChunk):
        merge_rows([_ResponsePb(chunks=bad)])
    with pytest.raises(LibraryInvalidChunk):  # the data client rejects them too
        _library_rows([_ResponsePb(chunks=bad)])


def test_rows_out_of_key_order_raise():  # the data client checks this one in its chunk_stream
    bad = [Chunk(row_key=b"k", family_name={"value": "f"}, qualifier={"value": b"q"}, value=b"v", commit_row=True),
           Chunk(row_key=b"a", family_name={"value": "f"}, qualifier={"value": b"q"}, value=b"v", commit_row=True)]
    with pytest.raises(InvalidChunk):
        merge_rows([_ResponsePb(chunks=bad)])


def test_document_from_cells_takes_the_newest_versions():
    top = layout.encode_top_posts([TopPost("p1", "https://img/1.jpg")])
    old_top = layout.encode_top_posts([TopPost("p0", "https://img/0.jpg")])
    cells = [
        ("counts", b"base", 2_000_000, layout.encode_count(100)),
        ("counts", b"base", 1_000_000, layout.encode_count(50)),
        ("counts", b"h.0", 1_000_000, layout.encode_count(7)),  # before the newest base: inside it
        ("counts", b"h.0", 3_000_000, layout.encode_count(5)),
        ("counts", b"h.1", 3_000_000, layout.encode_count(2)),  # same hour, a later generation: adds
        ("counts", b"h.1", 1_500_000, layout.encode_count(40)),  # before the newest base: inside it
        ("counts", b"h", 3_000_000, layout.encode_count(1000)),  # not an hour column: ignored
        ("top", b"posts", 1_000_000, old_top),
        ("top", b"posts", 4_000_000, top),
        ("meta", b"display", 3_000_000, b"Love"),
        ("meta", b"other", 9_000_000, b"ignored"),
    ]
    doc = document_from_cells("love", cells)
    assert doc.total_posts == 107
    assert [p.post_id for p in doc.top_posts] == ["p1"]
    assert doc.display_name == "Love"
    assert doc.updated_at == layout.from_millis(4_000)


def test_document_from_cells_reads_days_related_and_flags():
    flags = layout.Flags(hidden=True, reason="spam", by="ops", changed_at=layout.from_millis(6_000))
    cells = [
        ("counts", b"base", 2_000_000, layout.encode_count(10)),
        ("days", b"p.20261128", 2_000_000, layout.encode_count(40)),
        ("days", b"p.20261128", 1_000_000, layout.encode_count(39)),  # older version
        ("days", b"a.20261128", 2_000_000, layout.encode_count(17)),
        ("days", b"junk", 2_000_000, layout.encode_count(1)),
        ("meta", b"related", 1_000_000, layout.encode_related([layout.RelatedTag("old", 3)])),
        ("meta", b"related", 2_000_000, layout.encode_related([layout.RelatedTag("heart", 8)])),
        ("meta", b"flags", 6_000_000, layout.encode_flags(flags)),
        ("meta", b"flags", 5_000_000, layout.encode_flags(layout.Flags())),
    ]
    doc = document_from_cells("love", cells)
    assert doc.days == (layout.DayUse(dt.date(2026, 11, 28), 40, 17),)
    assert doc.related == (layout.RelatedTag("heart", 8),)
    assert doc.related_as_of == layout.from_millis(2_000)
    assert doc.flags == flags
    assert doc.total_posts == 10


def test_page_filter_reads_the_new_cells_in_the_same_union():
    pb = RowFilter.pb(PAGE_FILTER._to_pb())
    branches = [b.chain.filters for b in pb.interleave.filters if b.HasField("chain")]
    ranges = {(f[0].column_range_filter.family_name, f[0].column_range_filter.start_qualifier_closed)
              for f in branches}
    assert {("days", b""), ("meta", b"related"), ("meta", b"flags")} <= ranges
    assert all(f[1].cells_per_column_limit_filter == 1 for f in branches)


def test_is_page_needs_a_count_top_or_display_cell():
    assert not is_page([])
    assert not is_page([("meta", b"flags", 1, layout.encode_flags(layout.Flags(hidden=True)))])
    assert not is_page([("meta", b"related", 1, b"[]"), ("days", b"p.20261128", 1, layout.encode_count(1))])
    assert is_page([("meta", b"flags", 1, b"{}"), ("counts", b"h.0", 1, layout.encode_count(1))])
    assert is_page([("meta", b"display", 1, b"Love")])
    assert is_page([("top", b"posts", 1, b"[]")])


# ---- the read coalescer ------------------------------------------------------------------------
class SlowReader:
    """Stands in for _RowReader: records each call's keys; rows exist for keys not starting with 'x'."""

    operation_timeout = 2.0

    def __init__(self, delay=0.02, fail_keys=()):
        self.calls: list[list[bytes]] = []
        self.delay = delay
        self.fail_keys = set(fail_keys)
        self.lock = threading.Lock()

    def read_many(self, keys):
        with self.lock:
            self.calls.append(sorted(set(keys)))
        time.sleep(self.delay)
        if self.fail_keys & set(keys):
            raise grpc_error()
        return {k: [("f", b"q", 0, k)] for k in keys if not k.startswith(b"x")}


def grpc_error():
    return TimeoutError("simulated outage")


def test_coalescer_alone_sends_one_call_per_read():
    reader = SlowReader(delay=0)
    c = _ReadCoalescer(reader)
    assert c.read(b"a") == [("f", b"q", 0, b"a")]
    assert c.read(b"xa") is None
    assert reader.calls == [[b"a"], [b"xa"]]


def test_concurrent_reads_share_calls_and_each_gets_its_own_row():
    reader = SlowReader(delay=0.02)
    c = _ReadCoalescer(reader, max_batch=8)
    keys = [f"k{i:02d}".encode() for i in range(40)] + [b"xmissing", b"k00"]
    results = {}

    def go(k):
        results.setdefault(k, []).append(c.read(k))

    threads = [threading.Thread(target=go, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(not t.is_alive() for t in threads)
    assert results[b"xmissing"] == [None]
    assert all(r == [("f", b"q", 0, k)] for k, rs in results.items() if k != b"xmissing" for r in rs)
    assert len(results[b"k00"]) == 2
    assert sum(len(call) for call in reader.calls) <= len(keys)  # every key read, duplicates once per call
    assert {k for call in reader.calls for k in call} == set(keys)
    assert len(reader.calls) < len(keys)  # coalesced
    assert max(len(call) for call in reader.calls) <= 8
    assert c.calls == len(reader.calls)


def test_a_failed_call_fails_its_batch_only_and_the_next_reads_go_on():
    reader = SlowReader(delay=0.05, fail_keys={b"bad"})
    c = _ReadCoalescer(reader, max_in_flight=1)
    outcomes = {}

    def go(k):
        try:
            outcomes[k] = c.read(k)
        except (ConnectionError, TimeoutError) as e:
            outcomes[k] = e

    first = threading.Thread(target=go, args=(b"first",))
    first.start()
    time.sleep(0.01)  # "first" is in flight: the next two queue up and go together
    rest = [threading.Thread(target=go, args=(k,)) for k in (b"bad", b"good")]
    for t in rest:
        t.start()
    for t in [first, *rest]:
        t.join(10)
    assert outcomes[b"first"] == [("f", b"q", 0, b"first")]
    # the read that sent the call gets its error; the other read of the batch shares it
    assert isinstance(outcomes[b"bad"], TimeoutError) and not isinstance(outcomes[b"bad"], BatchFailed)
    assert isinstance(outcomes[b"good"], BatchFailed) and outcomes[b"good"].__cause__ is outcomes[b"bad"]
    assert reader.calls == [[b"first"], [b"bad", b"good"]]
    assert c.read(b"after") == [("f", b"q", 0, b"after")]  # not stuck


def test_calls_go_in_parallel_up_to_max_in_flight_then_queue():
    reader = SlowReader(delay=0.2)
    c = _ReadCoalescer(reader, max_in_flight=3)
    threads = [threading.Thread(target=c.read, args=(f"k{i}".encode(),)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.05)  # the three are in flight at once, none waited for another
    assert len(reader.calls) == 3
    queued = [threading.Thread(target=c.read, args=(f"q{i}".encode(),)) for i in range(5)]
    for t in queued:
        t.start()
    for t in [*threads, *queued]:
        t.join(10)
    assert sorted(map(len, reader.calls[3:]))[-1] >= 2  # the queued reads went in shared calls
    assert sum(map(len, reader.calls)) == 8 and c._in_flight == 0


def test_no_credentials_outside_the_emulator_is_store_unavailable(monkeypatch, tmp_path):
    """Production mode (no BIGTABLE_EMULATOR_HOST) without usable credentials: the page reader's
    channel cannot be created, and that is an unavailable store (503), not a crash."""
    from hashtag_store import BigtableStore, StoreUnavailable

    monkeypatch.delenv("BIGTABLE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    store = BigtableStore("p", "i", "t", read_timeout=0.5)
    with pytest.raises(StoreUnavailable):
        store.read_page("love")
    with pytest.raises(StoreUnavailable):
        store.ping()


# ---- count generations: the hour columns ------------------------------------------------------
def test_hour_columns_name_every_generation():
    assert layout.hour_column(0) == b"h.0"
    assert layout.hour_column(12) == b"h.12"
    for bad in (-1, True, "1", 1.0):
        with pytest.raises(ValueError):
            layout.hour_column(bad)
    assert [q for q in (b"h.0", b"h.12", b"h", b"h.", b"h.x", b"h.1a", b"base", b"hh.1", "h.١".encode())
            if layout.is_hour_column(q)] == [b"h.0", b"h.12"]


@given(st.integers(0, 10**12))
def test_the_read_filter_range_covers_every_generation(gen):
    """PAGE_FILTER's hour range is [start, end): every generation's column lies inside it."""
    hour_range = PAGE_FILTER.filters[1]
    q = layout.hour_column(gen)
    assert hour_range.start_qualifier <= q < hour_range.end_qualifier
    assert hour_range.inclusive_start and not hour_range.inclusive_end
    assert not hour_range.start_qualifier <= b"h" < hour_range.end_qualifier
    assert not hour_range.start_qualifier <= b"hour" < hour_range.end_qualifier


def test_cell_time_rounds_down_to_the_millisecond():
    import datetime as dt

    ts = dt.datetime(2026, 11, 22, 10, 0, 0, 123_999, tzinfo=dt.timezone.utc)
    assert layout.cell_time(ts) == ts.replace(microsecond=123_000)
    before_epoch = dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone.utc)
    assert layout.cell_time(before_epoch) == before_epoch.replace(microsecond=999_000)
