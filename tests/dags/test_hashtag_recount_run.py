"""dag.test() of hashtag_recount against the Bigtable emulator: live hour cells that drifted, an archive
in the streaming job's arrival-date layout; the DAG plans, checks the archive, runs the recount with
the pipelines' interpreter (.venv) on FnApiRunner and publishes the drift report.

Night 1 (no run record: the job resolves it to a full rebuild), its rerun (no change), night 2 (only
the new arrival day plus the overlap; a cross-night delete and a re-publish), a dry-run re-apply
(nothing written), and a drift over the threshold failing the report task. (A missing partition is
covered by test_missing_days: in dag.test() a retried task would wait for its backoff.)"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
H = lambda d, h: dt.datetime(2026, 11, d, h, tzinfo=UTC)  # noqa: E731


def line(pid, caption, t, event="published", eid=None):
    return json.dumps({"event": event, "post_id": pid, "user_id": "u", "caption": caption,
                       "image_url": "https://img.example/a.jpg", "event_time": t, "event_id": eid or pid + event})


def arrive(archive, day, lines, name="events-0.jsonl"):
    folder = archive / f"arrived={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


@pytest.fixture
def env(monkeypatch, airflow_db, store, table_name, tmp_path):
    archive = tmp_path / "archive"
    arrive(archive, "2026-11-21", [line("p1", "#Love #cat", "2026-11-21T10:00:00Z"),
                                   line("p2", "#love", "2026-11-21T11:00:00Z")])
    arrive(archive, "2026-11-22", [line("p3", "#ｌｏｖｅ", "2026-11-22T09:00:00Z"),
                                   line("p3", "#ｌｏｖｅ", "2026-11-22T09:00:00Z"),  # duplicate delivery
                                   line("p2", "#love", "2026-11-22T12:00:00Z", "deleted"),
                                   line("p9", "#late", "2026-11-23T00:00:30Z")])  # arrived before midnight, event after
    # the live count: p3 counted twice (duplicate), the delete of p2 never arrived, cat dropped as late
    store.write_hour_counts([("love", H(21, 10), 1, "Love"), ("love", H(21, 11), 1, None),
                             ("love", H(22, 9), 2, None), ("love", H(23, 1), 1, None)])
    for name, value in {"hashtags_archive": str(archive), "hashtags_project": PROJECT,
                        "hashtags_bigtable_instance": INSTANCE, "hashtags_table": table_name,
                        "hashtags_post_state_table": f"{table_name}-state",  # run records per test
                        "hashtags_runner": "FnApiRunner", "hashtags_drift_threshold": "10"}.items():
        monkeypatch.setenv("AIRFLOW_VAR_" + name.upper(), value)
    monkeypatch.setenv("HASHTAGS_REPORT_PATH", str(tmp_path / "reports"))
    return tmp_path


def run_dag(**kw):
    import importlib
    import sys

    sys.modules.pop("hashtag_recount", None)
    dag = importlib.import_module("hashtag_recount").dag
    dr = dag.test(**kw)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()} if hasattr(dr, "get_task_instances") else {}
    return dr, states


def totals(store):
    return {k: t for k, t, _ in store.scan_totals()}


def report(env, day):
    return json.loads((env / "reports" / f"drift-{day}.json").read_text())


def drifted(rep):
    return [(t["tag"], t["before"], t["after"]) for t in rep["drifted_tags"]]


def test_nightly_runs_repair_the_counts(env, store):
    assert totals(store) == {"love": 5}
    # Night 1: exact before 2026-11-23: love = p1 + p3 (p2 deleted) = 2, cat = 1 (+ the live 01:00 hour);
    # p9 (event after midnight) is not counted yet.
    dr, states = run_dag(logical_date=H(23, 2))
    assert str(dr.state) == "success", states
    assert states["recount_local"] == "success" and states["recount_dataflow"] == "skipped"
    assert totals(store) == {"love": 3, "cat": 1}
    rep = report(env, "2026-11-23")
    assert sorted(drifted(rep)) == [("cat", 0, 1), ("love", 5, 3)]
    assert rep["dry_run"] is False and rep["as_of"] == "2026-11-23T00:00:00Z"

    # Its rerun: same plan, nothing to repair, nothing changes.
    dr, states = run_dag(logical_date=H(23, 2) + dt.timedelta(minutes=1))
    assert str(dr.state) == "success", states
    assert totals(store) == {"love": 3, "cat": 1}
    assert report(env, "2026-11-23")["tags_drifted"] == 0

    # Night 2: new arrivals on the 23rd: p1 deleted (cross-night), p2 published again, p4 new;
    # the live hour cells of the 23rd saw p4 twice and never the delete.
    arrive(env / "archive", "2026-11-23", [line("p1", "#Love #cat", "2026-11-23T08:00:00Z", "deleted"),
                                           line("p2", "#love #dog", "2026-11-23T09:00:00Z", eid="p2-again"),
                                           line("p4", "#dog", "2026-11-23T10:00:00Z")])
    store.write_hour_counts([("dog", H(23, 9), 1, "dog"), ("dog", H(23, 10), 2, None),
                             ("love", H(23, 9), 1, None)])
    assert totals(store) == {"love": 4, "cat": 1, "dog": 3}
    dr, states = run_dag(logical_date=H(24, 2))
    assert str(dr.state) == "success", states
    # exact before 2026-11-24: love = p2 + p3 = 2 (p1 deleted), cat = 0, dog = p2 + p4 = 2, late = p9 = 1
    assert totals(store) == {"love": 2, "cat": 0, "dog": 2, "late": 1}
    rep = report(env, "2026-11-24")
    assert sorted(drifted(rep)) == [("cat", 1, 0), ("dog", 3, 2), ("late", 0, 1), ("love", 4, 2)]

    # A dry-run re-apply of the arrival days 21..23 as of the 24th: reports, writes nothing.
    dr, states = run_dag(logical_date=H(24, 3),
                         run_conf={"from_date": "2026-11-21", "to_date": "2026-11-23", "as_of": "2026-11-24",
                               "dry_run": True})
    assert str(dr.state) == "success", states
    assert totals(store) == {"love": 2, "cat": 0, "dog": 2, "late": 1}
    rep = report(env, "2026-11-24")
    assert rep["dry_run"] is True and rep["tags_drifted"] == 0


def test_drift_over_the_threshold_fails_the_report_task(env, store, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_HASHTAGS_DRIFT_THRESHOLD", "0.01")
    dr, states = run_dag(logical_date=H(23, 2))
    assert str(dr.state) == "failed", states
    assert states["recount_local"] == "success" and states["publish_drift_report"] == "failed"
    assert totals(store) == {"love": 3, "cat": 1}  # repaired all the same: the failure is the alert
