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

import collections
import datetime as dt
import json
import time
from pathlib import Path

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


def read_cells(table: str, project: str = PROJECT) -> dict[int, dict[str, dict[dt.datetime, list[int]]]]:
    """generation → row → hour → every stored version (no version filter)."""
    tbl = bigtable.Client(project=project).instance(INSTANCE).table(table)
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


# ---- the same relaunch through the RUNNING local job (issue 20): stop mid-stream, flush, relaunch --
DRILL_EVENTS = 1_000
DRILL_RATE = 100.0  # events/s, the drill
DRILL_TAGS = 5


def drill_messages(now: dt.datetime) -> list[tuple[bytes, dict]]:
    """DRILL_EVENTS published posts, each with #drill and one of #drill0..4, timed a minute ago."""
    from hashtags import messages

    when = messages.format_time(now - dt.timedelta(minutes=1))
    out = []
    for i in range(DRILL_EVENTS):
        body = {"event": "published", "post_id": f"d{i}", "user_id": f"u{i % 17}",
                "caption": f"#drill #drill{i % DRILL_TAGS}", "image_url": f"https://img.example/d{i}.jpg",
                "event_time": when}
        out.append((json.dumps(body).encode(), {"event_time": when, "event_id": f"d{i}"}))
    return out


def archived_post_ids(root: Path) -> collections.Counter:
    from hashtags import archive

    ids: collections.Counter = collections.Counter()
    for pattern in archive.partition_glob(str(root)):
        for f in Path("/").glob(pattern.lstrip("/")):
            ids.update(json.loads(line)["post_id"] for line in f.read_bytes().split(b"\n") if line)
    return ids


@pytest.fixture
def local_stack(tmp_path, monkeypatch, pubsub_emulator, bigtable_emulator):
    """devstack.stack's records and paths under tmp_path, its local addresses the test emulators',
    its settings a fresh project and table: what `make relaunch` acts on."""
    import uuid

    from devstack import stack
    from hashtags import settings as hs
    from hashtags.settings import Settings

    run = tmp_path / "run"
    for name, path in (("RUN", run), ("PIDS", run / "pids.json"), ("GENERATIONS", run / "generations.json"),
                       ("LOGS", run / "logs"), ("ARCHIVE", run / "archive")):
        monkeypatch.setattr(stack, name, path)
    monkeypatch.setattr(hs, "LOCAL_PUBSUB_HOST", pubsub_emulator.address)
    monkeypatch.setattr(hs, "LOCAL_BIGTABLE_HOST", bigtable_emulator.address)
    s = Settings(project="drill-hashtags", bigtable_instance=INSTANCE, table="t" + uuid.uuid4().hex[:10])
    for field, value in (("PROJECT", s.project), ("BIGTABLE_INSTANCE", s.bigtable_instance), ("TABLE", s.table)):
        monkeypatch.setenv(f"HASHTAGS_{field}", value)
    assert Settings.from_env(__import__("os").environ) == s
    return stack, s


@pytest.mark.slow
def test_a_local_job_stopped_mid_stream_and_relaunched_loses_nothing(local_stack, capsys):
    """The drill of issue 20 on the real local job (a subprocess on the emulators): events at
    100/s, then `make relaunch` (devstack.stack.relaunch) mid-stream: SIGTERM to the job, which
    stops pulling, fires its open windows, writes its archive and exits; the job starts again on
    generation 1 and the stack's records follow (status shows it running, down stops it). Every
    event is counted once the new job caught up, and every event is in the archive."""
    import threading

    from devstack import processes
    from devstack.resources import ensure_all
    from hashtag_store import BigtableStore
    from tests.integration.local_job import wait_for

    stack, s = local_stack
    ensure_all(s)
    env = processes.emulator_env(stack.hs.LOCAL_PUBSUB_HOST, stack.hs.LOCAL_BIGTABLE_HOST)
    log_a = stack.LOGS / "streaming-post-events.log"
    job = processes.start_streaming_job(s, stack.ARCHIVE, log_a, env, 2, read="post-events", generation=0)
    stack._save_pids({"streaming-post-events": job.pid})
    stack._save_generations({"streaming-post-events": 0})
    store = BigtableStore(s.project, s.bigtable_instance, s.table)
    expected = {"drill": DRILL_EVENTS, **{f"drill{k}": DRILL_EVENTS // DRILL_TAGS for k in range(DRILL_TAGS)}}

    def totals():
        return {t: (d.total_posts if (d := store.read_page(t)) else None) for t in expected}

    try:
        wait_for(lambda: ("streaming job started" in log_a.read_text(), None), 120, "job A to start", log_a)
        publisher = threading.Thread(target=_publish_at_rate, args=(s, drill_messages(dt.datetime.now(UTC))))
        publisher.start()
        wait_for(lambda: ((n := (totals()["drill"] or 0)) > 0, n), 60, "job A to count something", log_a)
        time.sleep(2)  # mid-stream: job A holds pulled events in open windows and archive panes
        capsys.readouterr()
        assert stack.relaunch("post-events") == 0
        said = capsys.readouterr().out
        assert "relaunched streaming-post-events" in said and "killed" not in said, said
        job.wait(timeout=10)  # gone (its exit status went to the relaunch's wait, which reaped it)
        assert "everything it pulled was written" in log_a.read_text(), log_a.read_text()[-3000:]
        counted_by_a = totals()["drill"]
        assert 0 < counted_by_a < DRILL_EVENTS  # stopped mid-stream, and what it took is written
        pids = json.loads(stack.PIDS.read_text())
        assert pids["streaming-post-events"] != job.pid
        assert json.loads(stack.GENERATIONS.read_text()) == {"streaming-post-events": 1}
        stack.status()
        assert f"pid {pids['streaming-post-events']:<8} running  generation 1" in capsys.readouterr().out
        publisher.join()
        wait_for(lambda: (totals() == expected, totals()), 180, "exact totals after the relaunch", log_a)
    finally:
        if job.poll() is None:
            job.kill()
        assert stack.down() == 0  # stops the relaunched job by its recorded PID
    assert not stack.PIDS.exists()
    cells = read_cells(s.table, s.project)
    assert set(cells) == {0, 1}  # both generations wrote: the relaunch overwrote nothing
    assert set(archived_post_ids(stack.ARCHIVE)) == {f"d{i}" for i in range(DRILL_EVENTS)}


def _publish_at_rate(s, msgs) -> None:
    """Ten messages per request, ten requests a second."""
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    topic = s.topic_path(s.post_events_topic)
    start = time.monotonic()
    for i in range(0, len(msgs), 10):
        delay = start + i / DRILL_RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        client.api.publish(topic=topic, messages=[{"data": d, "attributes": a} for d, a in msgs[i:i + 10]])
