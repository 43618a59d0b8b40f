"""The hashtag_recount DAG: it parses (DagBag, no import errors), imports no Beam and does no I/O at
parse time, and its schedule, catch-up, concurrency, retries and task order are as specified; the
run planning (nightly / backfill / full rebuild / dry run) is checked as pure functions."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from tests.dags.conftest import DAGS, ROOT

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["hashtag_recount"]


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "hashtag_recount" in dagbag.dags


def test_dag_file_imports_no_beam_and_reads_no_variable():
    """Parse in a fresh interpreter: apache_beam is never imported and no Variable is read."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(DAGS)!r})\n"
        "from airflow.sdk import Variable\n"
        "def boom(*a, **k): raise AssertionError('Variable.get at parse time')\n"
        "Variable.get = boom\n"
        "import hashtag_recount\n"
        "bad = sorted(m for m in sys.modules if m == 'apache_beam' or m.startswith('apache_beam.'))\n"
        "print('BEAM', bad)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "BEAM []" in out.stdout


def test_schedule_catchup_concurrency(dag):
    assert dag.dag_id == "hashtag_recount"
    assert dag.schedule == "0 2 * * *"
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"  # a cron run's logical date = its run time
    assert str(dag.timezone) == "UTC"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.params.keys()) == {"from_date", "to_date", "full_rebuild", "dry_run"}


def test_task_order_and_retries(dag):
    assert [t.task_id for t in dag.topological_sort()] == ["check_archive", "recount", "publish_drift_report"]
    t = dag.task_dict
    assert t["recount"].upstream_task_ids == {"check_archive"}
    assert t["publish_drift_report"].upstream_task_ids == {"check_archive", "recount"}
    assert (t["check_archive"].retries, t["recount"].retries, t["publish_drift_report"].retries) == (6, 2, 0)
    for task in (t["check_archive"], t["recount"]):
        assert task.retry_exponential_backoff == 2.0
        assert task.retry_delay == dt.timedelta(minutes=5)
        assert task.max_retry_delay == dt.timedelta(hours=1)


def test_recount_operator_uses_the_pipelines_interpreter(dag):
    from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

    op = dag.task_dict["recount"]
    assert isinstance(op, BeamRunPythonPipelineOperator)
    assert op.py_interpreter == str(ROOT / ".venv" / "bin" / "python")
    assert op.py_file == str(ROOT / "pipelines" / "recount_main.py")


# ---- planning (pure) --------------------------------------------------------------------------
def plan(params, run_after=dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)):
    import hashtag_recount

    return hashtag_recount.plan_run(params, run_after)


def test_nightly_plan():
    assert plan({}) == {"mode": "nightly", "as_of": "2026-11-23", "required_days": ["2026-11-22"],
                        "dry_run": False}
    # a manual run (logical_date None) at 15:00 plans from its run_after
    assert plan({"from_date": None, "to_date": None, "full_rebuild": False, "dry_run": True},
                dt.datetime(2026, 11, 23, 15, 0, tzinfo=UTC))["dry_run"] is True


def test_backfill_plan():
    p = plan({"from_date": "2026-11-20", "to_date": "2026-11-22"})
    assert p == {"mode": "backfill", "as_of": "2026-11-23",
                 "required_days": ["2026-11-20", "2026-11-21", "2026-11-22"], "dry_run": False}
    assert plan({"to_date": "2026-11-01"})["required_days"] == ["2026-11-01"]
    with pytest.raises(ValueError, match="after"):
        plan({"from_date": "2026-11-22", "to_date": "2026-11-20"})
    with pytest.raises(ValueError, match="not a complete day"):
        plan({"from_date": "2026-11-22", "to_date": "2026-11-23"})


def test_full_rebuild_plan():
    assert plan({"full_rebuild": True, "dry_run": True}) == {
        "mode": "full_rebuild", "as_of": "2026-11-23", "required_days": [], "dry_run": True}


def test_pipeline_options_local_and_dataflow(monkeypatch):
    import hashtag_recount as h

    monkeypatch.delenv("HASHTAGS_REPORT_PATH", raising=False)
    cfg = h.read_config(lambda name, default: default)
    opts = h.pipeline_options(plan({"dry_run": True}), cfg)
    assert opts == {"archive_path": str(ROOT / ".run" / "archive"), "as_of": "2026-11-23",
                    "project": "local-hashtags", "bigtable_project": "local-hashtags",
                    "bigtable_instance": "local", "bigtable_table": "hashtags",
                    "report_path": str(ROOT / "artifacts" / "drift"), "report_only": True}
    prod = dict(cfg, hashtags_runner="DataflowRunner", hashtags_temp_location="gs://tmp-bucket/tmp",
                hashtags_archive="gs://archive-bucket/archive", hashtags_project="prod-proj")
    opts = h.pipeline_options(plan({}), prod)
    assert opts["temp_location"] == "gs://tmp-bucket/tmp"
    assert opts["setup_file"] == str(ROOT / "setup.py")
    assert opts["report_path"] == "gs://tmp-bucket/tmp/drift-reports"
    assert "report_only" not in opts


def test_missing_days():
    import hashtag_recount as h

    files = {"/a/dt=2026-11-21": ["/a/dt=2026-11-21/x.jsonl"], "/a/dt=2026-11-22": ["/a/dt=2026-11-22/tmp.txt"]}
    assert h.missing_days("/a/", ["2026-11-21", "2026-11-22", "2026-11-23"],
                          lambda folder: files.get(folder, [])) == ["2026-11-22", "2026-11-23"]
