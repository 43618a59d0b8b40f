"""dag.test() of hashtag_recount against the Bigtable emulator: live hour cells that drifted, an
archive in the streaming job's layout; the DAG checks the archive, runs the recount with the
pipelines' interpreter (.venv) on FnApiRunner and publishes the drift report. Afterwards every
tag's total is the exact count, the report names the drifted tags, a second run changes nothing,
(A missing partition is covered by test_missing_days: in dag.test() a retried task would wait
for its backoff.)"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.conftest import INSTANCE, PROJECT
from tests.dags.conftest import ROOT

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
H = lambda d, h: dt.datetime(2026, 11, d, h, tzinfo=UTC)  # noqa: E731


def line(pid, caption, t, event="published"):
    return json.dumps({"event": event, "post_id": pid, "user_id": "u", "caption": caption,
                       "image_url": "https://img.example/a.jpg", "event_time": t, "event_id": pid + event})


@pytest.fixture
def env(monkeypatch, airflow_db, store, table_name, tmp_path):
    archive = tmp_path / "archive"
    for day, lines in {
        "2026-11-21": [line("p1", "#Love #cat", "2026-11-21T10:00:00Z"), line("p2", "#love", "2026-11-21T11:00:00Z")],
        "2026-11-22": [line("p3", "#ｌｏｖｅ", "2026-11-22T09:00:00Z"),
                       line("p3", "#ｌｏｖｅ", "2026-11-22T09:00:00Z"),  # duplicate delivery
                       line("p2", "#love", "2026-11-22T12:00:00Z", "deleted")],
    }.items():
        (archive / f"dt={day}").mkdir(parents=True)
        (archive / f"dt={day}" / "events-0.jsonl").write_text("\n".join(lines) + "\n")
    # the live count: p3 counted twice (duplicate), the delete of p2 never arrived, cat dropped as late
    store.write_hour_counts([("love", H(21, 10), 1, "Love"), ("love", H(21, 11), 1, None),
                             ("love", H(22, 9), 2, None), ("love", H(23, 1), 1, None)])
    for name, value in {"hashtags_archive": str(archive), "hashtags_project": PROJECT,
                        "hashtags_bigtable_instance": INSTANCE, "hashtags_table": table_name,
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


def test_nightly_run_repairs_the_counts(env, store):
    assert totals(store) == {"love": 5}
    dr, states = run_dag(logical_date=H(23, 2))
    assert str(dr.state) == "success", states
    # exact before 2026-11-23: love = p1 + p3 (p2 deleted) = 2, cat = 1; + the hour cell at 01:00
    assert totals(store) == {"love": 3, "cat": 1}
    report = json.loads((env / "reports" / "drift-2026-11-23.json").read_text())
    assert [(t["tag"], t["before"], t["after"]) for t in report["drifted_tags"]] == [("love", 5, 3), ("cat", 0, 1)]
    assert report["dry_run"] is False and report["as_of"] == "2026-11-23T00:00:00Z"

    dr2, _ = run_dag(logical_date=H(23, 2) + dt.timedelta(minutes=1))
    assert str(dr2.state) == "success"
    assert totals(store) == {"love": 3, "cat": 1}
    report2 = json.loads((env / "reports" / "drift-2026-11-23.json").read_text())
    assert report2["tags_drifted"] == 0

