"""Replaying the count path's writes leaves every total unchanged (the emulator, the real transforms).

The real count path of the streaming job (``ParsePostEvents`` → ``WindowedTagCounts`` → ``HourCountRow``
→ ``apache_beam.io.gcp.bigtableio.WriteToBigTable``) runs under a TestStream on the
BundleBasedDirectRunner against a fresh emulator table, over a fixed set of events spanning three
hour windows (repeated and differently spelled tags, deletes in a later hour, a post deleted within
its hour, a malformed message). Then:

1. the totals read through ``BigtableStore.read_page`` are the exact hand-computed numbers;
2. the SAME pipeline run again (a replay of the same windows' writes) leaves every total, and the
   number of ``counts:h.<gen>`` cells per row, unchanged: each write is a SetCell at (row,
   counts:h.<gen>, window start), so a replay rewrites the same cell instead of adding to it;
3. a replay with the firings split differently (early panes between element batches, an on-time
   pane, then a LATE pane for an event that arrives after the watermark passed its window) passes
   through intermediate values and ends at the same totals and cells.
"""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.io.gcp.bigtableio import WriteToBigTable
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import trigger
from apache_beam.transforms.window import TimestampedValue
from google.cloud import bigtable

from hashtags import layout
from pipelines.streaming import HourCountRow, WindowedTagCounts
from pipelines.transforms import ParsePostEvents
from tests.conftest import INSTANCE, PROJECT
from tests.integration.post_messages import at, msg

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
H10 = dt.datetime(2026, 11, 23, 10, tzinfo=UTC)
H11 = H10 + dt.timedelta(hours=1)
H12 = H10 + dt.timedelta(hours=2)
EARLY_SECONDS = 60  # WindowedTagCounts' default early firing delay (processing time)


P1 = msg("p1", "#Love #cats at the #beach, #love again", at(H10, 5))  # love once, cats, beach
P2 = msg("p2", "#LOVE #ｃａｔｓ", at(H10, 20))  # full-width cats = cats
P3 = msg("p3", "#beach day", at(H10, 40))
P4 = msg("p4", "#cats", at(H10, 50))
P10 = msg("p10", "#love #beach", at(H10, 55))  # in run C it arrives LATE (after 10:00's on-time pane)
P4_DELETED = msg("p4", "#cats", at(H11, 10), event="deleted")  # −1 in the 11:00 cell
P5 = msg("p5", "#love #sunset", at(H11, 15))
P6 = msg("p6", "#sunset #beach", at(H11, 45))
P7 = msg("p7", "#love", at(H12, 5))
P8 = msg("p8", "#sunset #Sunset #SUNSET", at(H12, 30))  # counts once
P9 = msg("p9", "#rain", at(H12, 50))
P9_DELETED = msg("p9", "#rain", at(H12, 55), event="deleted")  # published and deleted in one hour: 0
MALFORMED = TimestampedValue(b'{"event": "published", "post_id": ', at(H12, 1).timestamp())

ALL = [P1, P2, P3, P4, P10, P4_DELETED, P5, P6, P7, P8, P9, P9_DELETED, MALFORMED]

# Hand-computed: the hour cells and the totals (no base yet: total = sum of the hour cells).
EXPECTED_HOURS = {
    "love": {H10: 3, H11: 1, H12: 1},  # p1 p2 p10 | p5 | p7
    "cats": {H10: 3, H11: -1},  # p1 p2 p4 | p4 deleted
    "beach": {H10: 3, H11: 1},  # p1 p3 p10 | p6
    "sunset": {H11: 2, H12: 1},  # p5 p6 | p8
    "rain": {H12: 0},  # p9 published and deleted
}
EXPECTED_TOTALS = {"love": 5, "cats": 2, "beach": 4, "sunset": 3, "rain": 0}
assert EXPECTED_TOTALS == {k: sum(v.values()) for k, v in EXPECTED_HOURS.items()}

# Panes seen by the count path in the current run (in-process runner; this module is importable,
# so the collecting function is pickled by reference and appends here).
PANES: list[tuple[str, dt.datetime, int, int]] = []


def _collect_pane(hc) -> None:
    PANES.append((hc.key, hc.window_start, hc.pane_index, hc.tally.count))


def one_batch() -> TestStream:
    """Every event at once, then the watermark to the end: one on-time pane per (tag, hour)."""
    return (TestStream()
            .advance_watermark_to(H10.timestamp())
            .add_elements(ALL)
            .advance_watermark_to_infinity())


def split_firings() -> TestStream:
    """The same events in four batches: early panes (processing time advanced past the early delay),
    the on-time pane of 10:00, then p10 arriving late for 10:00 (a late pane), more early panes."""
    return (TestStream()
            .advance_watermark_to(H10.timestamp())
            .add_elements([P1, P2, P3])
            .advance_processing_time(EARLY_SECONDS + 1)  # early pane 10:00: love 2, cats 2, beach 2
            .add_elements([P4, P4_DELETED, P5])
            .advance_processing_time(EARLY_SECONDS + 1)  # early panes: cats@10 3; 11:00 cells
            .advance_watermark_to(at(H11, 30).timestamp())  # 10:00 on time
            .add_elements([P10, P6, P7])  # P10 is late for 10:00
            .advance_processing_time(EARLY_SECONDS + 1)
            .advance_watermark_to(at(H12, 40).timestamp())  # 11:00 on time
            .add_elements([P8, P9, P9_DELETED, MALFORMED])
            .advance_processing_time(EARLY_SECONDS + 1)
            .advance_watermark_to_infinity())


def run_count_path(stream: TestStream, table: str) -> None:
    """The streaming job's count path, writing to the emulator table through Beam's WriteToBigTable."""
    opts = PipelineOptions(["--runner=BundleBasedDirectRunner"])
    opts.view_as(StandardOptions).streaming = True
    PANES.clear()
    with TestPipeline(options=opts) as p:
        hours = ((p | stream | ParsePostEvents()).events
                 | WindowedTagCounts(late_trigger=trigger.AfterCount(1)))
        hours | "Panes" >> beam.Map(_collect_pane)
        (hours
         | beam.ParDo(HourCountRow())
         | WriteToBigTable(project_id=PROJECT, instance_id=INSTANCE, table_id=table))


def read_totals(store) -> dict[str, int]:
    out = {}
    for key in EXPECTED_TOTALS:
        doc = store.read_page(key)
        assert doc is not None, f"no row for {key!r}"
        out[key] = doc.total_posts
    return out


def read_hour_cells(table: str) -> dict[str, dict[dt.datetime, list[int]]]:
    """Every stored version of the hour cells (every count generation) per row, by cell timestamp
    (no version filter: a replay that added cells instead of rewriting them would show up here)."""
    tbl = bigtable.Client(project=PROJECT).instance(INSTANCE).table(table)
    out: dict[str, dict[dt.datetime, list[int]]] = {}
    for row in tbl.read_rows():
        by_ts: dict[dt.datetime, list[int]] = {}
        for qualifier, cells in row.cells.get(layout.FAMILY_COUNTS, {}).items():
            if not layout.is_hour_column(qualifier):
                continue
            for c in cells:
                by_ts.setdefault(c.timestamp.astimezone(UTC), []).append(layout.decode_count(c.value))
        out[row.row_key.decode()] = by_ts
    return out


def as_single(cells: dict[str, dict[dt.datetime, list[int]]]) -> dict[str, dict[dt.datetime, int]]:
    for key, by_ts in cells.items():
        for ts, values in by_ts.items():
            assert len(values) == 1, f"{key}@{ts:%H:%M} holds {len(values)} versions: {values}"
    return {k: {ts: v[0] for ts, v in by_ts.items()} for k, by_ts in cells.items()}


def test_replay_of_the_same_writes_leaves_totals_unchanged(store, table_name):
    run_count_path(one_batch(), table_name)
    first_panes = sorted(PANES)
    assert read_totals(store) == {"love": 5, "cats": 2, "beach": 4, "sunset": 3, "rain": 0}
    assert as_single(read_hour_cells(table_name)) == EXPECTED_HOURS
    # one on-time pane per (tag, hour): 10 cells, each written once
    assert len(first_panes) == 10 and {pane for _, _, pane, _ in first_panes} == {0}

    run_count_path(one_batch(), table_name)  # replay: the same windows' writes again
    assert sorted(PANES) == first_panes  # the same writes...
    assert read_totals(store) == {"love": 5, "cats": 2, "beach": 4, "sunset": 3, "rain": 0}
    assert as_single(read_hour_cells(table_name)) == EXPECTED_HOURS  # ...rewrote the same 10 cells

    run_count_path(one_batch(), table_name)  # and a third time
    assert read_totals(store) == EXPECTED_TOTALS


def test_replay_with_firings_split_differently_ends_at_the_same_totals(store, table_name):
    run_count_path(one_batch(), table_name)
    assert read_totals(store) == {"love": 5, "cats": 2, "beach": 4, "sunset": 3, "rain": 0}

    run_count_path(split_firings(), table_name)  # the same events, other panes
    panes = sorted(PANES)
    # the cells went through intermediate values on the way (early panes, then a late pane) ...
    assert [(pane, n) for k, w, pane, n in panes if (k, w) == ("love", H10)] == [(0, 2), (1, 2), (2, 3)]
    assert [(pane, n) for k, w, pane, n in panes if (k, w) == ("beach", H10)] == [(0, 2), (1, 2), (2, 3)]
    assert [(pane, n) for k, w, pane, n in panes if (k, w) == ("cats", H10)] == [(0, 2), (1, 3), (2, 3)]
    assert len(panes) > 10
    # ... and the last pane of every cell is the one-batch count: same totals, same cells
    assert read_totals(store) == {"love": 5, "cats": 2, "beach": 4, "sunset": 3, "rain": 0}
    assert as_single(read_hour_cells(table_name)) == EXPECTED_HOURS

    run_count_path(split_firings(), table_name)  # replaying the split run changes nothing either
    assert read_totals(store) == EXPECTED_TOTALS
    assert as_single(read_hour_cells(table_name)) == EXPECTED_HOURS


def test_split_firings_on_a_fresh_table_reach_the_exact_totals(store, table_name):
    """No earlier one-batch run underneath: the split run alone ends at the exact numbers."""
    run_count_path(split_firings(), table_name)
    assert read_totals(store) == {"love": 5, "cats": 2, "beach": 4, "sunset": 3, "rain": 0}
    assert as_single(read_hour_cells(table_name)) == EXPECTED_HOURS
