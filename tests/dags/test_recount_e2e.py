"""End to end on the emulators (issue 9's acceptance): the STREAMING job counts generated traffic with
injected duplicate deliveries (the local runner ignores id_label de-duplication, so the live counts
drift) and archives every delivery; then THREE nightly runs of the DAG (dag.test()) reconcile from
that archive into the same table. After each night every tag's total is the exact count (an oracle
over every delivered event: latest event per post), the drift report names exactly the tags whose
shown total differed, and a rerun of the last night changes nothing.

Three nights need three arrival days, but the local job archives under the wall-clock date: the
traffic of night k is dated noon of day k (T-3, T-2, T-1; T = today) and, once the job has archived
it, its files are moved into ``arrived=<day k>`` — the calendar passing, nothing else touched. Night
k is the run for the midnight after day k. Night 2 deletes posts of night 1 and night 3 edits posts
of night 2 and re-publishes a deleted one (the per-post state across nights). The streaming job gets
an allowed lateness of 5 days so that these (wall-clock late) events are counted live, not dropped.
Every wait polls a condition with a deadline; nothing sleeps for a fixed time."""
from __future__ import annotations

import collections
import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import INSTANCE
from tests.dags.conftest import ROOT

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

PROJECT = "e2e-recount"  # Beam wants Pub/Sub project ids of 6+ characters
UTC = dt.timezone.utc


def wait_for(predicate, timeout: float, what: str, log: Path | None = None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        ok, last = predicate()
        if ok:
            return last
        if time.monotonic() >= deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}\n{tail}")
        time.sleep(every)


@pytest.fixture
def stack(bigtable_emulator, pubsub_emulator, table_name, tmp_path):
    from devstack import processes
    from devstack.resources import ensure_all, streaming_args
    from hashtags.settings import Settings

    s = Settings(project=PROJECT, bigtable_instance=INSTANCE, table=table_name)
    ensure_all(s)
    archive = tmp_path / "archive"
    log = tmp_path / "streaming-post-events.log"
    env = processes.emulator_env(pubsub_emulator.address, bigtable_emulator.address)
    # The pipelines' interpreter (.venv), not this Airflow venv's: as the DAG's Beam operator does.
    python = os.environ.get("HASHTAGS_PY_INTERPRETER") or str(ROOT / ".venv" / "bin" / "python")
    args = [python, "-m", "pipelines.streaming_main",
            *streaming_args(s, str(archive), early_firing_seconds=2, read="post-events"),
            "--allowed_lateness_seconds=432000"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield s, archive, proc, log
    finally:
        processes.stop(proc)


def run_dag(logical_date: dt.datetime):
    import importlib
    import sys

    sys.modules.pop("hashtag_recount", None)
    dag = importlib.import_module("hashtag_recount").dag
    dr = dag.test(logical_date=logical_date)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()} if hasattr(dr, "get_task_instances") else {}
    return dr, states


def parsed(messages):
    """The valid events among the deliveries (duplicates included), as the job parses them."""
    from hashtags.messages import PostEvent, parse_post_event

    out = []
    for m in messages:
        if m.kind == "malformed":
            continue
        e = parse_post_event(m.data, m.attributes)
        assert isinstance(e, PostEvent), m
        out.append(e)
    return out


def exact_counts(events) -> collections.Counter:
    """The oracle: per post the latest event (event time, then a delete beats a publish, then
    event id) wins; a published winner counts +1 for each of its distinct tag keys."""
    latest = {}
    for e in events:
        key = (e.event_time, e.event == "deleted", e.event_id or "")
        if e.post_id not in latest or key > latest[e.post_id][0]:
            latest[e.post_id] = (key, e)
    counts = collections.Counter()
    for _, e in latest.values():
        if e.event == "published":
            for k, _ in e.tags():
                counts[k] += 1
    return counts


def event_message(body: dict, event_id: str):
    from devstack.loadgen import Message

    return Message(body["event"], json.dumps(body, ensure_ascii=False).encode(),
                   {"event_time": body["event_time"], "event_id": event_id}, body["user_id"])


def cross_night_events(previous, day: dt.date, night: int, *, deletes: int = 0, edits: int = 0,
                       republish: list[dict] | None = None):
    """Deletes and edits (same post id, other tags) of posts published on an earlier night, and
    re-publishes of deleted ones, all at 18:00 of ``day``."""
    t = dt.datetime.combine(day, dt.time(18, 0), tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    bodies = [json.loads(m.data) for m in previous if m.kind == "published"]
    out, deleted = [], []
    for i, b in enumerate(bodies[:deletes]):
        out.append(event_message(dict(b, event="deleted", image_url=None, event_time=t), f"n{night}-del-{i}"))
        deleted.append(b)
    for i, b in enumerate(bodies[deletes:deletes + edits]):
        out.append(event_message(dict(b, caption=f"edited night {night} #E2eEdited #cat", event_time=t),
                                 f"n{night}-edit-{i}"))
    for i, b in enumerate(republish or []):
        out.append(event_message(dict(b, event_time=t), f"n{night}-again-{i}"))
    return out, deleted


def test_streaming_with_duplicates_then_three_nightly_dag_runs(stack, airflow_db, monkeypatch, tmp_path):
    from devstack import loadgen, processes
    from hashtag_store import BigtableStore
    from hashtags import archive as layout

    s, archive, proc, log = stack
    today = dt.datetime.now(UTC).date()
    days = [today - dt.timedelta(days=3 - k) for k in range(3)]  # the arrival (and event) day of each night
    store = BigtableStore(s.project, s.bigtable_instance, s.table)
    for name, value in {"hashtags_archive": str(archive), "hashtags_project": s.project,
                        "hashtags_bigtable_instance": s.bigtable_instance, "hashtags_table": s.table,
                        "hashtags_post_state_table": f"{s.table}-state",
                        "hashtags_runner": "FnApiRunner", "hashtags_drift_threshold": "10"}.items():
        monkeypatch.setenv("AIRFLOW_VAR_" + name.upper(), value)
    reports = tmp_path / "reports"
    monkeypatch.setenv("HASHTAGS_REPORT_PATH", str(reports))

    def totals() -> dict[str, int]:
        return {k: t for k, t, _ in store.scan_totals()}

    def archive_files(exclude: set[str]):
        return [f for f in archive.glob(f"{layout.PARTITION_KEY}=*/*")
                if layout.is_archive_file(str(f)) and f.parent.name not in exclude]

    delivered: list = []  # every valid event delivered so far (all nights)
    exact_before = collections.Counter()
    moved: set[str] = set()
    previous, deleted = [], []
    for night, day in enumerate(days, start=1):
        # 1. The night's traffic: generated posts (deletes, malformed, duplicate deliveries) + cross-night events.
        exp = loadgen.Expected()
        noon = dt.datetime.combine(day, dt.time(12, 0), tzinfo=UTC)
        msgs = list(loadgen.generate(400, seed=10 + night, deletes=0.06, malformed=0.02, duplicates=0.06,
                                     now=noon, spread_minutes=20, expected=exp))
        assert exp.duplicates >= 10 and exp.deleted >= 10 and exp.malformed >= 3
        extra, deleted_now = cross_night_events(
            previous, day, night, deletes=6 if night == 2 else 0, edits=6 if night == 3 else 0,
            republish=deleted[:3] if night == 3 else None)
        assert len(extra) == {1: 0, 2: 6, 3: 9}[night]
        msgs += extra
        deleted += deleted_now
        events = parsed(msgs)
        delivered += events
        exact = exact_counts(delivered)
        live = collections.Counter()
        for e in events:
            for k, _ in e.tags():
                live[k] += e.delta
        shown = {k: max(exact_before[k] + live[k], 0) for k in set(exact_before) | set(live)}
        drifting = {k for k in set(shown) | set(exact) if shown.get(k, 0) != exact[k]}
        assert drifting, f"night {night}: the duplicates must make some live counts drift"
        loadgen.publish(msgs, s.project, s.post_events_topic, progress=False)

        # 2. The live counts: every delivery counted (duplicates too) on top of the last base.
        def live_settled():
            assert proc.poll() is None, "streaming job died"
            got = totals()
            wrong = {k: (got.get(k, 0), n) for k, n in shown.items() if got.get(k, 0) != n}
            return not wrong, dict(list(wrong.items())[:5])

        # 600 s: the local job also scores trends now (~4x the CPU an event, docs/BENCHMARKS.md "Trends"), and CI
        # runs this suite beside the main one on 2 cores (it timed out at 300 s there once, counts still arriving)
        wait_for(live_settled, 600, f"night {night}: the live totals to count every delivery", log, every=2)

        # 3. The archive: every valid delivery of the night; then its files become arrived=<day>.
        def archived():
            assert proc.poll() is None, "streaming job died"
            n = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in archive_files(moved))
            return n >= len(events), (n, len(events))

        wait_for(archived, 240, f"night {night}: the archive to hold every delivery", log)
        folder = archive / layout.partition_name(day)
        folder.mkdir(exist_ok=True)
        for f in archive_files(moved):
            if f.parent != folder:
                f.rename(folder / f.name)
        moved.add(folder.name)
        lines = [ln for f in folder.glob("*.jsonl*") for ln in f.read_text(encoding="utf-8").splitlines()]
        assert len(lines) == len(events)

        # 4. The nightly DAG run for the midnight after that day.
        as_of = day + dt.timedelta(days=1)
        dr, states = run_dag(dt.datetime.combine(as_of, dt.time(2, 0), tzinfo=UTC))
        assert str(dr.state) == "success", states
        after = totals()
        assert {k: after.get(k, 0) for k in set(exact) | set(after)} == \
            {k: exact[k] for k in set(exact) | set(after)}, f"night {night}: every tag is exact"
        report = json.loads((reports / f"drift-{as_of.isoformat()}.json").read_text())
        assert report["as_of"] == f"{as_of.isoformat()}T00:00:00Z" and report["dry_run"] is False
        named = {t["tag"]: (t["before"], t["after"]) for t in report["drifted_tags"]}
        assert set(named) == drifting and report["tags_drifted"] == len(drifting), f"night {night}"
        assert named == {k: (shown.get(k, 0), exact[k]) for k in drifting}
        exact_before, previous = exact, msgs

    # 5. A rerun of the last night: nothing to repair, nothing changes.
    processes.stop(proc)
    final = totals()
    dr, states = run_dag(dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(2, 1), tzinfo=UTC))
    assert str(dr.state) == "success", states
    assert totals() == final
    report = json.loads((reports / f"drift-{(days[-1] + dt.timedelta(days=1)).isoformat()}.json").read_text())
    assert report["tags_drifted"] == 0 and report["drifted_tags"] == []
