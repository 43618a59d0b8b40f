"""Count generations on the emulator: a relaunch in the middle of an hour keeps every total exact.

Two jobs of the streaming job's real count path (``ParsePostEvents`` → ``WindowedTagCounts`` →
``HourCountRow(generation)`` → ``pipelines.bigtable_write.WriteRows``) share hours: job A (generation 0) reads
the events up to 10:30 and is drained (its TestStream ends: every open window fires, as a Dataflow
drain does); job B (generation 1) is the relaunch and reads the events after that, some in the
same 10:00 hour, one of them late for it, a delete of a post job A counted. Job B starts with empty
window state, so its 10:00 cell holds only what it saw. Totals are read through
``BigtableStore.read_page`` (the web service's one-row read) and ``scan_totals``.

1. with the relaunch on a new generation, every total is exact, each generation's cells hold what
   that job saw, and a base older than some hour cells counts only the cells at/after it;
2. the same relaunch on the SAME generation (the bug generations fix) overwrites job A's 10:00
   cells with job B's partial counts: totals too low, so the test above can fail;
3. a replay within one generation (job B's writes again) changes no total and no cell.
"""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import trigger
from google.cloud import bigtable

from hashtags import layout
from pipelines.bigtable_write import WriteRows
from pipelines.streaming import HourCountRow, WindowedTagCounts
from pipelines.transforms import DEAD, ParsePostEvents
from tests.conftest import INSTANCE, PROJECT
from tests.integration.post_messages import at, msg

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
DAY = dt.datetime(2026, 11, 23, tzinfo=UTC)
H10 = DAY + dt.timedelta(hours=10)
H11 = H10 + dt.timedelta(hours=1)
RELAUNCH = H10 + dt.timedelta(minutes=30)
EARLY_SECONDS = 60  # WindowedTagCounts' default early firing delay


# Job A (generation 0): everything before the relaunch at 10:30.
A1 = msg("a1", "#love #cats", at(H10, 5))
A2 = msg("a2", "#love", at(H10, 20))
A3 = msg("a3", "#beach", at(H10, 25))
# Job B (the relaunch): the same hour and the next; B5 arrives after B's watermark passed 10:00.
B1 = msg("b1", "#love", at(H10, 35))
B2 = msg("b2", "#cats #beach", at(H10, 50))
B3 = msg("b3", "#love #sunset", at(H11, 10))
B4 = msg("a1", "#love #cats", at(H11, 20), event="deleted")  # deletes a post job A counted
B5 = msg("b5", "#cats", at(H10, 40))

# Hand-computed, per generation and hour. Job B's 10:00 cells hold only what B saw.
CELLS_A = {"love": {H10: 2}, "cats": {H10: 1}, "beach": {H10: 1}}
CELLS_B = {"love": {H10: 1, H11: 0}, "cats": {H10: 2, H11: -1}, "beach": {H10: 1}, "sunset": {H11: 1}}
BASE_LOVE = 100  # a reconciliation's base at midnight; an older generation-0 cell lies before it
EXPECTED = {"love": BASE_LOVE + 2 + 1 + 0, "cats": 1 + 2 - 1, "beach": 1 + 1, "sunset": 1}


def job_a() -> TestStream:
    """Read until the relaunch, then drained: the watermark to the end fires every open window."""
    return (TestStream()
            .advance_watermark_to(H10.timestamp())
            .add_elements([A1, A2])
            .advance_processing_time(EARLY_SECONDS + 1)  # an early pane, as on a live job
            .add_elements([A3])
            .advance_watermark_to_infinity())


def job_b() -> TestStream:
    """The relaunched job: early panes, the on-time pane of 10:00, then a late event for 10:00."""
    return (TestStream()
            .advance_watermark_to(RELAUNCH.timestamp())
            .add_elements([B1, B2, B3])
            .advance_processing_time(EARLY_SECONDS + 1)
            .add_elements([B4])
            .advance_watermark_to(at(H11, 30).timestamp())  # 10:00 on time
            .add_elements([B5])  # late for 10:00: a late pane rewrites B's own 10:00 cell
            .advance_processing_time(EARLY_SECONDS + 1)
            .advance_watermark_to_infinity())


def run_job(stream: TestStream, table: str, generation: int) -> None:
    opts = PipelineOptions(["--runner=BundleBasedDirectRunner"])
    opts.view_as(StandardOptions).streaming = True
    with TestPipeline(options=opts) as p:
        rows = ((p | stream | ParsePostEvents()).events
                | WindowedTagCounts(late_trigger=trigger.AfterCount(1))
                | beam.ParDo(HourCountRow(generation)).with_outputs(DEAD, main="rows"))
        rows.rows | WriteRows(PROJECT, INSTANCE, table)


def read_cells(table: str) -> dict[int, dict[str, dict[dt.datetime, list[int]]]]:
    """generation → row → hour → every stored version (no version filter)."""
    tbl = bigtable.Client(project=PROJECT).instance(INSTANCE).table(table)
    out: dict[int, dict[str, dict[dt.datetime, list[int]]]] = {}
    for row in tbl.read_rows():
        for qualifier, cells in row.cells.get(layout.FAMILY_COUNTS, {}).items():
            if not layout.is_hour_column(qualifier):
                continue
            gen = int(qualifier[len(layout.HOUR_PREFIX):])
            by_hour = out.setdefault(gen, {}).setdefault(row.row_key.decode(), {})
            for c in cells:
                by_hour.setdefault(c.timestamp.astimezone(UTC), []).append(layout.decode_count(c.value))
    return out


def single(cells: dict[str, dict[dt.datetime, list[int]]]) -> dict[str, dict[dt.datetime, int]]:
    for key, by_hour in cells.items():
        for hour, values in by_hour.items():
            assert len(values) == 1, f"{key}@{hour:%H:%M} holds {len(values)} versions: {values}"
    return {k: {h: v[0] for h, v in by_hour.items()} for k, by_hour in cells.items()}


def totals(store) -> dict[str, int | None]:
    return {k: (doc.total_posts if (doc := store.read_page(k)) else None) for k in EXPECTED}


def with_base(store) -> None:
    """A reconciliation base for love at midnight, and a generation-0 cell before it (inside it)."""
    store.write_base_counts([("love", BASE_LOVE)], as_of=DAY)
    store.write_hour_counts([("love", DAY - dt.timedelta(hours=1), 40, None)], generation=0)


def test_a_relaunch_on_a_new_generation_keeps_every_total_exact(store, table_name):
    with_base(store)
    run_job(job_a(), table_name, generation=0)
    assert totals(store) == {"love": BASE_LOVE + 2, "cats": 1, "beach": 1, "sunset": None}
    run_job(job_b(), table_name, generation=1)

    assert totals(store) == EXPECTED == {"love": 103, "cats": 2, "beach": 2, "sunset": 1}
    assert sorted((k, n) for k, n, _ in store.scan_totals()) == sorted(EXPECTED.items())
    cells = read_cells(table_name)
    assert set(cells) == {0, 1}
    before_base = {"love": {DAY - dt.timedelta(hours=1): 40}}
    assert single(cells[0]) == {k: {**before_base.get(k, {}), **v} for k, v in CELLS_A.items()}
    assert single(cells[1]) == CELLS_B


def test_the_same_relaunch_on_the_same_generation_loses_counts(store, table_name):
    """Why generations exist: job B's partial 10:00 windows overwrite job A's cells."""
    with_base(store)
    run_job(job_a(), table_name, generation=0)
    run_job(job_b(), table_name, generation=0)
    got = totals(store)
    assert got == {"love": BASE_LOVE + 1 + 0, "cats": 2 - 1, "beach": 1, "sunset": 1}
    assert got["love"] < EXPECTED["love"] and got["cats"] < EXPECTED["cats"]


def test_a_replay_within_one_generation_is_idempotent(store, table_name):
    with_base(store)
    run_job(job_a(), table_name, generation=0)
    run_job(job_b(), table_name, generation=1)
    first = read_cells(table_name)
    run_job(job_b(), table_name, generation=1)  # the relaunched job's writes again
    assert totals(store) == EXPECTED
    assert read_cells(table_name) == first
    assert single(first[1]) == CELLS_B
