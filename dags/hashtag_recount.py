"""DAG ``hashtag_recount``: the nightly exact recount of every hashtag (DESIGN.md "Recount job and DAG").

    check_archive  →  recount (Beam: pipelines/recount_main.py)  →  publish_drift_report

* Nightly at 02:00 UTC, no catch-up, one active run, retries with exponential backoff. A nightly
  run recounts as of the midnight of the day it runs (``as_of`` = the logical date's day, or run_after's
  for a manual run, 00:00 UTC), so
  it needs yesterday's archive partition ``dt=<as_of - 1 day>``; ``check_archive`` fails (and is
  retried with backoff, like a sensor) until that partition has files.
* Triggered from the UI with Params: ``from_date``/``to_date`` (days of events, inclusive) recount
  as of the midnight after ``to_date`` (the base at a midnight is ALL history before it, so one
  recount covers the range; every day of the range must have archive files); ``full_rebuild``
  recounts the whole archive as of today's midnight without the per-day check; ``dry_run`` only
  reports (``--report_only``: nothing is written).
* The recount runs with ``BeamRunPythonPipelineOperator``: locally ``FnApiRunner`` with the
  pipelines' own interpreter (``HASHTAGS_PY_INTERPRETER``, default ``<project>/.venv/bin/python``:
  Beam lives there, not in Airflow's venv); in production ``DataflowRunner`` — selected by the
  Variable ``hashtags_runner`` (or env ``AIRFLOW_VAR_HASHTAGS_RUNNER``).
* ``publish_drift_report`` reads the report the job wrote, logs its one-line summary, returns it
  (XCom) and FAILS when the drift ratio exceeds ``hashtags_drift_threshold`` (the alert; the counts
  are already repaired by then, so this task is not retried).

Variables (all optional locally; names shared with terraform/): hashtags_runner, hashtags_archive,
hashtags_project, hashtags_bigtable_instance, hashtags_table, hashtags_region,
hashtags_temp_location, hashtags_drift_threshold. Env: HASHTAGS_PROJECT_ROOT (where
pipelines/recount_main.py and setup.py live; default: the parent of this folder),
HASHTAGS_PY_INTERPRETER, HASHTAGS_REPORT_PATH (default <root>/artifacts/drift locally,
<hashtags_temp_location>/drift-reports on Dataflow).

Parse time does no I/O and imports no Beam: Variables are read inside the tasks.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.sdk import DAG, Param, Variable, task

log = logging.getLogger(__name__)

DAG_ID = "hashtag_recount"
PROJECT_ROOT = Path(os.environ.get("HASHTAGS_PROJECT_ROOT") or Path(__file__).resolve().parent.parent)
PY_INTERPRETER = os.environ.get("HASHTAGS_PY_INTERPRETER") or str(PROJECT_ROOT / ".venv" / "bin" / "python")

# Variable name → local default. The terraform engineer sets these in Cloud Composer.
VARIABLE_DEFAULTS: dict[str, str] = {
    "hashtags_runner": "FnApiRunner",
    "hashtags_archive": str(PROJECT_ROOT / ".run" / "archive"),
    "hashtags_project": "local-hashtags",
    "hashtags_bigtable_instance": "local",
    "hashtags_table": "hashtags",
    "hashtags_region": "",
    "hashtags_temp_location": "",
    "hashtags_drift_threshold": "0.05",
}

DEFAULT_ARGS = {
    "owner": "hashtags",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": 2.0,  # 5, 10, 20 min
    "max_retry_delay": dt.timedelta(hours=1),
}


# ---- pure planning (unit-tested) --------------------------------------------------------------
def _day(value: Any) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip()[:10])


def plan_run(params: Mapping[str, Any], run_after: dt.datetime) -> dict[str, Any]:
    """What this run recounts. ``run_after`` is the run's time (the cron time for a nightly run,
    the trigger time for a manual one: manual runs have logical_date None)."""
    today = run_after.astimezone(dt.timezone.utc).date()
    from_day, to_day = _day(params.get("from_date")), _day(params.get("to_date"))
    dry_run = bool(params.get("dry_run"))
    if params.get("full_rebuild"):
        mode, as_of, required = "full_rebuild", today, []
    elif from_day or to_day:
        from_day, to_day = from_day or to_day, to_day or from_day
        if from_day > to_day:
            raise ValueError(f"from_date {from_day} is after to_date {to_day}")
        as_of = to_day + dt.timedelta(days=1)
        if as_of > today:
            raise ValueError(f"to_date {to_day} is not a complete day yet (today is {today} UTC)")
        mode = "backfill"
        required = [from_day + dt.timedelta(days=i) for i in range((to_day - from_day).days + 1)]
    else:
        mode, as_of, required = "nightly", today, [today - dt.timedelta(days=1)]
    return {"mode": mode, "as_of": as_of.isoformat(), "required_days": [d.isoformat() for d in required],
            "dry_run": dry_run}


def read_config(get: Callable[[str, str], str]) -> dict[str, str]:
    return {name: (get(name, default) or default) for name, default in VARIABLE_DEFAULTS.items()}


def pipeline_options(plan: Mapping[str, Any], cfg: Mapping[str, str]) -> dict[str, Any]:
    """The recount job's command-line options (BeamRunPythonPipelineOperator turns them into --k=v)."""
    dataflow = cfg["hashtags_runner"].lower() == "dataflowrunner"
    opts: dict[str, Any] = {
        "archive_path": cfg["hashtags_archive"],
        "as_of": plan["as_of"],
        "project": cfg["hashtags_project"],
        "bigtable_project": cfg["hashtags_project"],
        "bigtable_instance": cfg["hashtags_bigtable_instance"],
        "bigtable_table": cfg["hashtags_table"],
        "report_path": report_path(cfg),
    }
    if plan["dry_run"]:
        opts["report_only"] = True
    if dataflow:
        opts.update({"temp_location": cfg["hashtags_temp_location"],
                     "setup_file": str(PROJECT_ROOT / "setup.py")})
    return opts


def report_path(cfg: Mapping[str, str]) -> str:
    env = os.environ.get("HASHTAGS_REPORT_PATH")
    if env:
        return env
    if cfg["hashtags_runner"].lower() == "dataflowrunner" and cfg["hashtags_temp_location"]:
        return cfg["hashtags_temp_location"].rstrip("/") + "/drift-reports"
    return str(PROJECT_ROOT / "artifacts" / "drift")


def missing_days(archive: str, days: list[str], list_files: Callable[[str], list[str]]) -> list[str]:
    return [d for d in days if not [f for f in list_files(f"{archive.rstrip('/')}/dt={d}") if f.endswith(".jsonl")]]


# ---- I/O helpers (run inside tasks only) ------------------------------------------------------
def _list_files(folder: str) -> list[str]:
    if folder.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, _, prefix = folder[5:].partition("/")
        return [f"gs://{bucket}/{n}" for n in GCSHook().list(bucket, prefix=prefix.rstrip("/") + "/")]
    p = Path(folder)
    return [str(c) for c in p.iterdir() if c.is_file()] if p.is_dir() else []


def _any_archive(archive: str) -> bool:
    if archive.startswith("gs://"):
        bucket, _, prefix = archive[5:].partition("/")
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return any(n.endswith(".jsonl") for n in GCSHook().list(bucket, prefix=prefix.rstrip("/") + "/dt="))
    return any(Path(archive).glob("dt=*/*.jsonl"))


def _read_text(path: str) -> str:
    if path.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, _, name = path[5:].partition("/")
        return GCSHook().download(bucket, name).decode("utf-8")
    return Path(path).read_text(encoding="utf-8")


def _variable(name: str, default: str) -> str:
    return Variable.get(name, default=default)


with DAG(
    dag_id=DAG_ID,
    description="Nightly exact recount of hashtag counts from the post-event archive + drift report",
    schedule="0 2 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=dt.timedelta(hours=6),
    render_template_as_native_obj=True,
    tags=["hashtags", "beam"],
    params={
        "from_date": Param(None, type=["null", "string"], format="date",
                           description="Backfill: first day of events (YYYY-MM-DD)"),
        "to_date": Param(None, type=["null", "string"], format="date",
                         description="Backfill: last day of events; recounts as of the next midnight"),
        "full_rebuild": Param(False, type="boolean",
                              description="Recount the whole archive as of today's midnight (no per-day check)"),
        "dry_run": Param(False, type="boolean", description="Report only: write nothing to the table"),
    },
    doc_md=__doc__,
) as dag:

    @task(retries=6)  # waits for a late archive partition: 5, 10, 20, 40, 60, 60 min
    def check_archive(params: dict | None = None, dag_run=None) -> dict[str, Any]:
        """Plan the run and check its archive partitions are present (fails clearly otherwise)."""
        # A scheduled run's logical date is its cron time (also what dag.test(logical_date=…)
        # sets); a manual run has none and plans from its trigger time, run_after.
        run_at = (getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
                  or dt.datetime.now(dt.timezone.utc))
        plan = plan_run(params or {}, run_at)
        cfg = read_config(_variable)
        archive = cfg["hashtags_archive"]
        if plan["mode"] == "full_rebuild":
            if not _any_archive(archive):
                raise FileNotFoundError(f"no archive files under {archive}/dt=*/ for a full rebuild")
        else:
            missing = missing_days(archive, plan["required_days"], _list_files)
            if missing:
                raise FileNotFoundError(
                    f"archive partitions missing under {archive}: {', '.join('dt=' + d for d in missing)}")
        plan["runner"] = cfg["hashtags_runner"]
        plan["pipeline_options"] = pipeline_options(plan, cfg)
        plan["report_path"] = report_path(cfg)
        plan["drift_threshold"] = cfg["hashtags_drift_threshold"]
        plan["dataflow_config"] = {
            "job_name": f"hashtag-recount-{plan['as_of']}",
            "project_id": cfg["hashtags_project"],
            "location": cfg["hashtags_region"] or None,
            "wait_until_finished": True,
        }
        log.info("plan: %s", json.dumps(plan, sort_keys=True))
        return plan

    plan = check_archive()

    recount = BeamRunPythonPipelineOperator(
        task_id="recount",
        py_file=str(PROJECT_ROOT / "pipelines" / "recount_main.py"),
        py_interpreter=PY_INTERPRETER,
        runner="{{ ti.xcom_pull(task_ids='check_archive')['runner'] }}",
        pipeline_options="{{ ti.xcom_pull(task_ids='check_archive')['pipeline_options'] }}",
        dataflow_config="{{ ti.xcom_pull(task_ids='check_archive')['dataflow_config'] }}",
        retries=2,
    )

    @task(retries=0)  # the alert: retrying would not change the report
    def publish_drift_report(plan: dict[str, Any]) -> dict[str, Any]:
        path = f"{plan['report_path'].rstrip('/')}/drift-{plan['as_of']}.json"
        report = json.loads(_read_text(path))
        threshold = float(plan["drift_threshold"]) if plan.get("drift_threshold") not in (None, "") else None
        ratio = float(report["drift_ratio"])
        over = threshold is not None and ratio > threshold
        worst = ", ".join(f"{t['tag']} {t['diff']:+d}" for t in report["drifted_tags"][:5]) or "none"
        line = (f"drift as_of={report['as_of']} tags={report['tags']} drifted={report['tags_drifted']} "
                f"({report['fraction_drifted']:.2%}) total {report['total_before']} -> {report['total_after']} "
                f"ratio {ratio:.4%} threshold {threshold if threshold is not None else 'none'}; worst: {worst}; "
                f"report: {path} (+ .md)")
        summary = {k: report[k] for k in ("as_of", "tags", "tags_drifted", "fraction_drifted", "total_before",
                                          "total_after", "abs_diff_total", "drift_ratio", "dry_run")}
        summary.update({"report": path, "threshold": threshold,
                        "drifted_tags": [t["tag"] for t in report["drifted_tags"]]})
        if over:
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s", line)
            raise AirflowFailException(f"DRIFT OVER THRESHOLD: {line}")
        log.info("%s", line)
        return summary

    plan >> recount >> publish_drift_report(plan)
