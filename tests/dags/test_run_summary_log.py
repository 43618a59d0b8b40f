"""The DAG's run-summary record (issue 10): publish_drift_report logs one ``recount_run`` record from
the report it reads (fields as json_fields and, for Airflow's Cloud Logging task handler, which sends
only the message text, as JSON in the message); the plan and launch tasks' failure callback logs one
with status failed. Run with Airflow's venv: .venv-airflow/bin/python -m pytest tests/dags/test_run_summary_log.py"""
from __future__ import annotations

import datetime as dt
import json
import logging
import types

import pytest

from pipelines import drift
from tests.dags.conftest import DAGS

AS_OF = "2026-11-23T00:00:00Z"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS)).dags["hashtag_recount"]


def write_report(folder) -> dict:
    rows = [drift.TagDrift("love", 12, 10), drift.TagDrift("cat", 3, 3), drift.TagDrift("dog", 0, 1)]
    report = drift.build_report(drift.summarize(rows), as_of=AS_OF, table="hashtags", dry_run=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drift-2026-11-23.json").write_text(drift.render_json(report))
    return report


def spec(folder, threshold: str, dataflow: bool) -> dict:
    s = {"plan": {"mode": "nightly", "as_of": "2026-11-23", "dry_run": False}, "report_path": str(folder),
         "drift_threshold": threshold, "dataflow": dataflow}
    if dataflow:
        s["flex"] = {"body": {"launchParameter": {"jobName": "hashtag-recount-20261123-nightly"}}}
    return s


def records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "json_fields", {}).get("event") == "recount_run"]


def test_the_report_task_logs_the_run_summary(dag, tmp_path, caplog):
    write_report(tmp_path)
    task = dag.get_task("publish_drift_report")
    with caplog.at_level(logging.INFO):
        summary = task.python_callable(spec(tmp_path, "0.5", dataflow=True))
    (rec,) = records(caplog)
    f = rec.json_fields
    assert {k: f[k] for k in ("status", "mode", "as_of", "tags_touched", "drifted_tags", "job", "threshold")} == {
        "status": "succeeded", "mode": "nightly", "as_of": AS_OF, "tags_touched": 3, "drifted_tags": 2,
        "job": "hashtag-recount-20261123-nightly", "threshold": 0.5}
    assert f["drift_ratio"] == pytest.approx(3 / 14) and rec.levelname == "INFO"
    assert f["report_path"] == f"{tmp_path}/drift-2026-11-23.json" and summary["tags_drifted"] == 2
    event, _, payload = rec.getMessage().partition(" ")
    assert event == "recount_run" and json.loads(payload) == {k: v for k, v in f.items() if k != "event"}


def test_drift_over_the_threshold_is_logged_before_the_task_fails(dag, tmp_path, caplog):
    from airflow.sdk.exceptions import AirflowFailException

    write_report(tmp_path)
    with caplog.at_level(logging.INFO), pytest.raises(AirflowFailException):
        dag.get_task("publish_drift_report").python_callable(spec(tmp_path, "0.1", dataflow=False))
    (rec,) = records(caplog)
    assert (rec.json_fields["status"], rec.json_fields["job"], rec.levelname) == ("drift", None, "WARNING")


def test_a_failed_plan_or_launch_task_logs_a_failed_run(dag, caplog):
    callbacks = {t: _callbacks(dag.get_task(t)) for t in ("check_archive", "recount_dataflow", "recount_local")}
    assert {t: [c.__name__ for c in cbs] for t, cbs in callbacks.items()} == {
        t: ["log_failed_run"] for t in callbacks}
    context = {"params": {"from_date": None, "to_date": None, "as_of": None, "full_rebuild": False, "dry_run": False},
               "dag_run": types.SimpleNamespace(logical_date=dt.datetime(2026, 11, 23, 2, tzinfo=dt.timezone.utc)),
               "task_instance": types.SimpleNamespace(task_id="recount_local"),
               "exception": RuntimeError("the pipeline failed")}
    with caplog.at_level(logging.INFO):
        callbacks["recount_local"][0](context)
    (rec,) = records(caplog)
    f = rec.json_fields
    assert {k: f[k] for k in ("status", "mode", "as_of", "job", "task", "error", "tags_touched", "drift_ratio")} == {
        "status": "failed", "mode": "nightly", "as_of": AS_OF, "job": "hashtag-recount-20261123-nightly",
        "task": "recount_local", "error": "the pipeline failed", "tags_touched": None, "drift_ratio": None}
    assert rec.levelname == "ERROR"


def _callbacks(task) -> list:
    cb = task.on_failure_callback
    return list(cb) if isinstance(cb, (list, tuple)) else [cb]
