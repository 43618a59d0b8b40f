"""End to end on the emulators (issue 4's acceptance): the STREAMING job counts a generated stream with
injected duplicate deliveries (the local runner ignores id_label de-duplication, so the live counts
drift), archives every delivery; then the DAG (dag.test()) recounts from that archive into the same
table. Afterwards every tag's total is the generator's exact count, the drift report names exactly
the tags whose live total differed, and a second DAG run changes nothing.

The events are dated yesterday around noon UTC (one archive partition, the nightly run's required
day) and the DAG runs as the nightly run of today: as_of = today's midnight. The streaming job gets
an allowed lateness of 48 h so that these (wall-clock late) events are counted live, not dropped.
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


def live_expectation(messages) -> collections.Counter:
    """What the streaming job counts when it drops nothing: every delivered valid message, duplicates
    included, ±1 per distinct key (the job's own extraction)."""
    from hashtags.messages import PostEvent, parse_post_event

    live = collections.Counter()
    for m in messages:
        if m.kind == "malformed":
            continue
        e = parse_post_event(m.data, m.attributes)
        assert isinstance(e, PostEvent), m
        for key, _ in e.tags():
            live[key] += e.delta
    return live


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
            "--allowed_lateness_seconds=172800"]
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


def test_streaming_with_duplicates_then_dag_recount(stack, airflow_db, monkeypatch, tmp_path):
    from devstack import loadgen, processes
    from hashtag_store import BigtableStore

    s, archive, proc, log = stack
    # today = the nightly run's day (10 minutes of margin around midnight); events: yesterday ~noon
    today = (dt.datetime.now(UTC) - dt.timedelta(minutes=10)).date()
    yesterday = today - dt.timedelta(days=1)
    noon = dt.datetime.combine(yesterday, dt.time(12, 0), tzinfo=UTC)
    exp = loadgen.Expected()
    msgs = list(loadgen.generate(900, seed=11, deletes=0.06, malformed=0.02, duplicates=0.05,
                                 now=noon, spread_minutes=20, expected=exp))
    assert exp.duplicates >= 20 and exp.deleted >= 20 and exp.malformed >= 5
    live_expected = live_expectation(msgs)
    drifting = {k for k in set(live_expected) | set(exp.counts) if max(live_expected[k], 0) != exp.counts[k]}
    assert drifting, "the duplicates must make some live counts drift"
    loadgen.publish(msgs, s.project, s.post_events_topic, progress=False)

    store = BigtableStore(s.project, s.bigtable_instance, s.table)

    def totals() -> dict[str, int]:
        return {k: t for k, t, _ in store.scan_totals()}

    # 1. The live counts: every delivery counted (duplicates too), so they drift from the exact counts.
    def live_settled():
        assert proc.poll() is None, "streaming job died"
        got = totals()
        wrong = {k: (got.get(k, 0), max(n, 0)) for k, n in live_expected.items() if got.get(k, 0) != max(n, 0)}
        return not wrong, dict(list(wrong.items())[:5])

    wait_for(live_settled, 150, "the live totals to count every delivery", log, every=2)

    # 2. The archive: every valid delivery (duplicates included), all in yesterday's partition.
    deliveries = exp.published + exp.deleted + exp.duplicates

    def archived():
        assert proc.poll() is None, "streaming job died"
        files = list(archive.glob("dt=*/*.jsonl"))
        n = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
        return n >= deliveries, (n, deliveries, sorted({f.parent.name for f in files}))

    wait_for(archived, 120, "the archive to hold every delivery", log)
    processes.stop(proc)
    lines = [line for f in archive.glob("dt=*/*.jsonl") for line in f.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == deliveries
    assert {f.parent.name for f in archive.glob("dt=*/*.jsonl")} == {f"dt={yesterday.isoformat()}"}

    before = totals()
    assert {k for k in set(before) | set(exp.counts) if before.get(k, 0) != exp.counts[k]} == drifting

    # 3. The nightly DAG run of today, against the same table: check archive → recount → report.
    for name, value in {"hashtags_archive": str(archive), "hashtags_project": s.project,
                        "hashtags_bigtable_instance": s.bigtable_instance, "hashtags_table": s.table,
                        "hashtags_runner": "FnApiRunner", "hashtags_drift_threshold": "10"}.items():
        monkeypatch.setenv("AIRFLOW_VAR_" + name.upper(), value)
    reports = tmp_path / "reports"
    monkeypatch.setenv("HASHTAGS_REPORT_PATH", str(reports))
    run_at = dt.datetime.combine(today, dt.time(0, 1), tzinfo=UTC)
    dr, states = run_dag(run_at)
    assert str(dr.state) == "success", states

    after = totals()
    assert {k: after.get(k, 0) for k in exp.counts} == dict(exp.counts)  # every tag: the exact count
    assert set(after) == set(before) | {k for k, n in exp.counts.items() if n}
    report_file = reports / f"drift-{today.isoformat()}.json"
    report = json.loads(report_file.read_text())
    assert report["as_of"] == f"{today.isoformat()}T00:00:00Z" and report["dry_run"] is False
    named = {t["tag"]: (t["before"], t["after"]) for t in report["drifted_tags"]}
    assert set(named) == drifting and report["tags_drifted"] == len(drifting)
    assert named == {k: (before.get(k, 0), exp.counts[k]) for k in drifting}
    assert report["total_after"] == sum(exp.counts.values())

    # 4. A second run: nothing to repair, nothing changes.
    dr2, states2 = run_dag(run_at + dt.timedelta(minutes=1))
    assert str(dr2.state) == "success", states2
    assert totals() == after
    report2 = json.loads(report_file.read_text())
    assert report2["tags_drifted"] == 0 and report2["drifted_tags"] == []
