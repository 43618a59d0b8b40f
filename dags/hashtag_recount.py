"""DAG ``hashtag_recount``: the nightly incremental reconciliation of hashtag counts (DESIGN.md
"Reconciliation (incremental) and the DAG").

    check_archive → choose_runner ─┬─ recount_dataflow (Flex Template, production) ─┬→ publish_drift_report
                                   └─ recount_local (Beam over the project's .venv) ─┘

* Nightly at 02:00 UTC, no catch-up, one active run, retries with exponential backoff, a 20 h run
  timeout. A run killed or failed half way (timeout, cancelled job, lost worker) left cells at its
  midnight and no run record: the job reads its priors as of the last RECORDED run, so neither the
  retry nor the next night reads them as applied (docs/RECONCILIATION.md). What a run
  covers is planned by ``hashtags.planning`` (the one planning module; the backfill CLI uses it too):
  a scheduled run is a ``nightly`` for the midnight of its logical day (the job reads its run
  record and applies the arrival days since the last successful run); from the UI, *Trigger w/
  config*: ``from_date``/``to_date`` (ARRIVAL days, inclusive) re-apply those days, ``full_rebuild``
  rebuilds from the whole archive, ``as_of`` (optional) picks the midnight, ``dry_run`` only reports.
* ``check_archive`` plans the run and fails (retried with backoff, like a sensor) until the arrival
  partitions it needs have files: ``arrived=<as_of - 1>`` for a nightly, every day of a re-apply, any
  day for a full rebuild (``hashtags.archive`` layout).
* Production (Variable ``hashtags_runner`` = DataflowRunner): ``recount_dataflow`` launches the job
  as a Flex Template (``hashtags_recount_template``: the recount's spec, built from the streaming
  job's image) with the recount's service account, staging and temp locations and a job name per
  night and plan (``planning.job_name``). Airflow has the job id from the launch response (XCom
  ``job_id``, the Dataflow link; the task defers to the triggerer while the job runs; killing the
  task cancels the job). A retry never starts a second
  job: see ``RecountFlexTemplateOperator``. Locally ``recount_local`` runs
  pipelines/recount_main.py (the same entry file) with the project's interpreter (``HASHTAGS_PY_INTERPRETER``, default
  ``<project>/.venv/bin/python``: Beam lives there, not in Airflow's venv) on FnApiRunner.
* ``publish_drift_report`` reads the report the job wrote to ``hashtags_report_location`` (a kept
  bucket in production, never the 7-day temp bucket), logs its one-line summary, returns it (XCom)
  and FAILS when the drift ratio exceeds ``hashtags_drift_threshold`` (the alert; the counts are
  already repaired by then, so it is not retried).

On Cloud Composer this project is not installed: terraform/composer.tf copies ``hashtags/``
(``__init__``, ``planning``, ``archive``: pure, stdlib only) beside this file, and the DAG folder is
on ``sys.path``. Imports are limited to what Composer's Airflow 3 builds ship (composer-3-airflow-3.1.x
to 3.3.1: airflow.sdk, the Beam provider's BeamRunPythonPipelineOperator, the Google provider's
DataflowStartFlexTemplateOperator / DataflowHook / GCSHook, all present since long before).
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
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator
from airflow.sdk import DAG, Param, Variable, task

from hashtags import archive, planning

log = logging.getLogger(__name__)

DAG_ID = "hashtag_recount"
PROJECT_ROOT = Path(os.environ.get("HASHTAGS_PROJECT_ROOT") or Path(__file__).resolve().parent.parent)
PY_INTERPRETER = os.environ.get("HASHTAGS_PY_INTERPRETER") or str(PROJECT_ROOT / ".venv" / "bin" / "python")
DATAFLOW_TASK, LOCAL_TASK = "recount_dataflow", "recount_local"

# Variable name → local default. terraform/composer.tf sets every one on Composer.
VARIABLE_DEFAULTS: dict[str, str] = {
    "hashtags_runner": "FnApiRunner",
    "hashtags_archive": str(PROJECT_ROOT / ".run" / "archive"),
    "hashtags_project": "local-hashtags",
    "hashtags_bigtable_instance": "local",
    "hashtags_table": "hashtags",
    "hashtags_post_state_table": "post_state",  # = hashtags.settings.POST_STATE_TABLE (tests/dags check)
    "hashtags_region": "",
    "hashtags_temp_location": "",
    "hashtags_staging_location": "",
    "hashtags_service_account": "",
    "hashtags_recount_template": "",
    "hashtags_sdk_container_image": "",
    "hashtags_report_location": str(PROJECT_ROOT / "artifacts" / "drift"),
    "hashtags_drift_threshold": "0.05",
    # The job's writes and its reads of its priors (run records, post states, bases, day cells): the
    # writers' single-cluster profile on Bigtable, so it reads what the last run wrote (terraform sets
    # hashtags.settings.WRITER_APP_PROFILE); none locally (the emulator has no profiles).
    "hashtags_bigtable_app_profile": "",
}

DEFAULT_ARGS = {
    "owner": "hashtags",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": 2.0,  # 5, 10, 20 min
    "max_retry_delay": dt.timedelta(hours=1),
}


# ---- configuration and launch specs (pure, tested) ---------------------------------------------
def read_config(get: Callable[[str, str], str]) -> dict[str, str]:
    return {name: (get(name, default) or default) for name, default in VARIABLE_DEFAULTS.items()}


def is_dataflow(cfg: Mapping[str, str]) -> bool:
    return cfg["hashtags_runner"].lower() == "dataflowrunner"


def report_location(cfg: Mapping[str, str]) -> str:
    """Where the job writes drift-<as_of>.json/.md. On Dataflow it must be a kept gs:// location,
    never under the temp location (its bucket deletes objects after a few days)."""
    path = (os.environ.get("HASHTAGS_REPORT_PATH") or cfg["hashtags_report_location"]).rstrip("/")
    if is_dataflow(cfg):
        temp = cfg["hashtags_temp_location"].rstrip("/")
        if not path.startswith("gs://"):
            raise ValueError(f"hashtags_report_location must be a gs:// location on Dataflow, not {path!r}")
        if temp and (path == temp or path.startswith(temp + "/")):
            raise ValueError(f"hashtags_report_location {path} is under the temp location {temp}: not kept")
    return path


def job_config(plan: planning.RunPlan, cfg: Mapping[str, str]) -> planning.JobConfig:
    """The job's typed request for a plan: what to read and where to write. Its wire form
    (``to_parameters``) is both the Flex Template's parameters and the local task's options."""
    return planning.JobConfig(
        plan, cfg["hashtags_archive"], report_location(cfg), cfg["hashtags_bigtable_instance"],
        cfg["hashtags_table"], cfg["hashtags_post_state_table"], project=cfg["hashtags_project"],
        app_profile=cfg["hashtags_bigtable_app_profile"] or None)


def flex_body(plan: planning.RunPlan, cfg: Mapping[str, str]) -> dict[str, Any]:
    """The flexTemplates.launch request body (Dataflow REST v1b3 LaunchFlexTemplateParameter)."""
    for name in ("hashtags_recount_template", "hashtags_service_account", "hashtags_staging_location",
                 "hashtags_temp_location", "hashtags_region"):
        if not cfg[name]:
            raise ValueError(f"Variable {name} is required with DataflowRunner")
    environment = {
        "serviceAccountEmail": cfg["hashtags_service_account"],
        "stagingLocation": cfg["hashtags_staging_location"],
        "tempLocation": cfg["hashtags_temp_location"],
        "additionalUserLabels": {"app": "hashtags", "mode": plan.mode.replace("_", "-")},
    }
    if cfg["hashtags_sdk_container_image"]:
        environment["sdkContainerImage"] = cfg["hashtags_sdk_container_image"]
    return {"launchParameter": {
        "jobName": planning.job_name(plan),
        "containerSpecGcsPath": cfg["hashtags_recount_template"],
        "parameters": job_config(plan, cfg).to_parameters(),
        "environment": environment,
    }}


def launch_spec(plan: planning.RunPlan, cfg: Mapping[str, str]) -> dict[str, Any]:
    """Everything the launch and report tasks need (JSON, passed as check_archive's XCom)."""
    spec: dict[str, Any] = {
        "plan": {"mode": plan.mode, "as_of": plan.as_of.isoformat(), "dry_run": plan.dry_run,
                 "arrived_from": plan.arrived_from.isoformat() if plan.arrived_from else None,
                 "arrived_to": plan.arrived_to.isoformat() if plan.arrived_to else None},
        "runner": cfg["hashtags_runner"],
        "dataflow": is_dataflow(cfg),
        "report_path": report_location(cfg),
        "drift_threshold": cfg["hashtags_drift_threshold"],
    }
    if spec["dataflow"]:
        spec["flex"] = {"body": flex_body(plan, cfg), "location": cfg["hashtags_region"],
                        "project_id": cfg["hashtags_project"], "night_prefix": planning.night_job_prefix(plan.as_of)}
    else:
        spec["pipeline_options"] = job_config(plan, cfg).to_parameters()
    return spec


def missing_days(root: str, days: list[dt.date], has_files: Callable[[str], bool]) -> list[dt.date]:
    """The arrival days whose partition has no archive file (``has_files(folder)``)."""
    return [d for d in days if not has_files(archive.partition_path(root, d))]


# ---- I/O helpers (run inside tasks only) ------------------------------------------------------
def _has_archive_files(folder: str) -> bool:
    """Any ``*.jsonl[.gz]`` directly under ``folder`` (one partition, or ``<root>/arrived=*``): on
    GCS one listing call returning at most one object per suffix, however large the archive."""
    patterns = [f"{folder.rstrip('/')}/*{suffix}" for suffix in archive.FILE_SUFFIXES]
    if folder.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        client = GCSHook().get_conn()
        for pattern in patterns:
            bucket, _, glob_ = pattern[5:].partition("/")
            if next(iter(client.list_blobs(bucket, match_glob=glob_, max_results=1)), None) is not None:
                return True
        return False
    import glob

    return any(glob.glob(pattern) for pattern in patterns)


def _read_text(path: str) -> str:
    if path.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, _, name = path[5:].partition("/")
        return GCSHook().download(bucket, name).decode("utf-8")
    return Path(path).read_text(encoding="utf-8")


def _variable(name: str, default: str) -> str:
    return Variable.get(name, default=default)


def log_run_record(report: Mapping[str, Any] | None, mode: str | None, job: str | None, *,
                   threshold: float | None = None, **extra: Any) -> dict[str, Any]:
    """The run's ``recount_run`` record (hashtag_ops.logs, beside this file on Composer; stdlib only
    at import). Airflow 3's Cloud Logging task handler sends only a record's message text
    (providers/google/cloud/log/cloud_logging_task_handler.py 22.8.0: ``_transport.send(record,
    str(msg.get("event", "")))``), so the message carries the fields as JSON too; handlers that read
    ``json_fields`` (google-cloud-logging's) get them as fields."""
    from hashtag_ops import logs

    fields = {**logs.recount_run_fields(report, mode=mode, job=job, threshold=threshold,
                                        status=extra.pop("status", None), as_of=extra.pop("as_of", None)), **extra}
    logs.log_recount_run(log, fields, f"{logs.RECOUNT_RUN} {json.dumps(fields, sort_keys=True, default=str)}")
    return fields


def log_failed_run(context) -> None:
    """on_failure_callback of the plan and launch tasks (called once their retries are spent): a
    ``recount_run`` record with status failed, so a run that never reaches its report is counted."""
    mode = as_of = job = None
    try:
        plan = planning.plan_from_params(context.get("params") or {}, run_day(context.get("dag_run")))
        mode, as_of, job = plan.mode, f"{plan.as_of.isoformat()}T00:00:00Z", planning.job_name(plan)
    except Exception:  # bad params: the record still says the run failed
        pass
    ti = context.get("task_instance")
    log_run_record(None, mode, job, status="failed", as_of=as_of, task=getattr(ti, "task_id", None),
                   error=str(context.get("exception"))[:500])


def run_day(dag_run) -> dt.date:
    """A scheduled run's logical date is its cron time (also what dag.test(logical_date=…) sets);
    a manual run has none and plans from its trigger time, run_after."""
    when = (getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
            or dt.datetime.now(dt.timezone.utc))
    return planning.parse_day(when)


# ---- the production launcher -------------------------------------------------------------------
class RecountFlexTemplateOperator(DataflowStartFlexTemplateOperator):
    """DataflowStartFlexTemplateOperator that never starts a second job for a night.

    Verified in apache-airflow-providers-google 22.8.0 (airflow/providers/google/cloud/operators/
    dataflow.py and hooks/dataflow.py): the operator takes the job id from the flexTemplates.launch
    response (``hook.start_flex_template`` → XCom ``job_id``, DataflowJobLink, ``on_kill`` cancels
    ``self.job``), so unlike BeamRunPythonPipelineOperator it does not parse logs for it; with
    ``append_job_name=False`` the body's ``jobName`` is sent as is (otherwise an 8-character uuid is
    appended on every attempt, which is what let a retry start a second job). Dataflow itself
    rejects a launch whose name equals an ACTIVE job's (409 ALREADY_EXISTS, "There is already an
    active job named …"), which covers two launches racing. Before launching, this operator lists the
    region's active jobs: one with exactly this name (an earlier attempt whose worker died) is
    adopted and waited for instead of failing on that 409; one of the same night under another name
    (another plan writing the same base) fails the attempt, to be retried with backoff.
    """

    template_fields = (*DataflowStartFlexTemplateOperator.template_fields, "night_prefix")

    def __init__(self, *, night_prefix: str, **kwargs):
        super().__init__(**kwargs)
        self.night_prefix = night_prefix  # planning.night_job_prefix(as_of): every job writing this night

    def active_jobs(self, prefix: str) -> list[dict]:
        jobs_api = self.hook.get_conn().projects().locations().jobs()
        request = jobs_api.list(projectId=self.project_id, location=self.location, filter="ACTIVE")
        found: list[dict] = []
        while request is not None:
            response = request.execute(num_retries=self.hook.num_retries)
            found += [j for j in response.get("jobs", []) if j.get("name", "").startswith(prefix)]
            request = jobs_api.list_next(previous_request=request, previous_response=response)
        return found

    def execute(self, context):
        from airflow.exceptions import AirflowException

        name = self.body["launchParameter"]["jobName"]
        active = self.active_jobs(self.night_prefix)
        others = sorted(j["name"] for j in active if j["name"] != name)
        if others:
            raise AirflowException(f"another recount job of this night is active ({', '.join(others)}): "
                                   f"not launching {name}")
        mine = [j for j in active if j["name"] == name]
        if not mine:
            return super().execute(context)
        self.job = mine[0]
        job_id = self.job["id"]
        self.log.info("Dataflow job %s (%s) is already running (an earlier attempt): waiting for it", name, job_id)
        context["task_instance"].xcom_push(key="job_id", value=job_id)
        if self.deferrable:  # wait in the triggerer, as the parent's own deferrable launch does
            from airflow.providers.google.cloud.triggers.dataflow import TemplateJobStartTrigger

            self.defer(trigger=TemplateJobStartTrigger(
                project_id=self.project_id, job_id=job_id, location=self.location, gcp_conn_id=self.gcp_conn_id,
                poll_sleep=self.poll_sleep, impersonation_chain=self.impersonation_chain,
                cancel_timeout=self.cancel_timeout, drain_pipeline=self.drain_pipeline,
                cancel_on_kill=self.cancel_on_kill), method_name="execute_complete")
        self.hook.wait_for_done(job_name=name, location=self.location, project_id=self.project_id, job_id=job_id)
        return self.hook.get_job(job_id=job_id, project_id=self.project_id, location=self.location)


def _spec(path: str) -> str:
    return "{{ ti.xcom_pull(task_ids='check_archive')" + path + " }}"


with DAG(
    dag_id=DAG_ID,
    description="Nightly incremental reconciliation of hashtag counts from the post-event archive + drift report",
    schedule="0 2 * * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    # A killed run is harmless to the counts (docs/RECONCILIATION.md "A failed night"): its job is
    # cancelled (the operator's on_kill), leaves no run record, and no later run reads its cells as
    # applied. The bound only has to let check_archive's whole wait (5+10+20+40+60+60 min) and a
    # large job with its retries finish, and stay under the 24 h period so that, with
    # max_active_runs=1, a stuck run never blocks the next night for more than a few hours.
    dagrun_timeout=dt.timedelta(hours=20),
    render_template_as_native_obj=True,
    tags=["hashtags", "dataflow"],
    params={
        "from_date": Param(None, type=["null", "string"], format="date",
                           description="Re-apply: first ARRIVAL day (YYYY-MM-DD)"),
        "to_date": Param(None, type=["null", "string"], format="date",
                         description="Re-apply: last ARRIVAL day, inclusive"),
        "as_of": Param(None, type=["null", "string"], format="date",
                       description="Midnight (UTC date) the run writes; default: the run's day"),
        "full_rebuild": Param(False, type="boolean",
                              description="Rebuild every count and post state from the whole archive"),
        "dry_run": Param(False, type="boolean", description="Report only: write nothing to the tables"),
    },
    doc_md=__doc__,
) as dag:

    # retries: waits for a late archive partition (5, 10, 20, 40, 60, 60 min)
    @task(retries=6, on_failure_callback=log_failed_run)
    def check_archive(params: dict | None = None, dag_run=None) -> dict[str, Any]:
        """Plan the run and check its archive partitions have files (fails clearly otherwise)."""
        plan = planning.plan_from_params(params or {}, run_day(dag_run))
        cfg = read_config(_variable)
        root = cfg["hashtags_archive"]
        days = planning.required_days(plan)
        if days:
            missing = missing_days(root, days, _has_archive_files)
            if missing:
                raise FileNotFoundError(f"archive partitions without files under {root}: "
                                        + ", ".join(archive.partition_name(d) for d in missing))
        elif not _has_archive_files(f"{root.rstrip('/')}/{archive.PARTITION_KEY}=*"):
            raise FileNotFoundError(f"no archive files under {root}/{archive.PARTITION_KEY}=*/ for a {plan.mode}")
        spec = launch_spec(plan, cfg)
        log.info("%s; plan: %s", plan.describe(), json.dumps(spec, sort_keys=True))
        return spec

    @task.branch(retries=0)
    def choose_runner(spec: dict[str, Any]) -> str:
        return DATAFLOW_TASK if spec["dataflow"] else LOCAL_TASK

    spec = check_archive()

    recount_dataflow = RecountFlexTemplateOperator(
        task_id=DATAFLOW_TASK,
        body=_spec("['flex']['body']"),
        location=_spec("['flex']['location']"),
        project_id=_spec("['flex']['project_id']"),
        night_prefix=_spec("['flex']['night_prefix']"),
        append_job_name=False,  # the deterministic name is what makes a retry find its job
        # Deferrable (provider 22.8.0, operators/dataflow.py): the launch returns at once and the
        # triggerer polls the job (TemplateJobStartTrigger, done / failed / stopped), so a worker slot
        # is not held for the job's hours; killing the task cancels the job through the trigger
        # (cancel_on_kill). wait_until_finished must be unset with it (the operator refuses both).
        deferrable=True,
        retries=2,
        on_failure_callback=log_failed_run,
    )

    recount_local = BeamRunPythonPipelineOperator(
        task_id=LOCAL_TASK,
        py_file=str(PROJECT_ROOT / "pipelines" / "recount_main.py"),
        py_interpreter=PY_INTERPRETER,
        runner=_spec("['runner']"),
        pipeline_options=_spec("['pipeline_options']"),
        retries=2,
        on_failure_callback=log_failed_run,
    )

    @task(retries=0, trigger_rule="none_failed_min_one_success")  # the alert: retrying would not change the report
    def publish_drift_report(spec: dict[str, Any]) -> dict[str, Any]:
        path = f"{spec['report_path']}/drift-{spec['plan']['as_of']}.json"
        report = json.loads(_read_text(path))
        threshold = float(spec["drift_threshold"]) if spec.get("drift_threshold") not in (None, "") else None
        ratio = float(report["drift_ratio"])
        worst = ", ".join(f"{t['tag']} {t['diff']:+d}" for t in report["drifted_tags"][:5]) or "none"
        line = (f"drift {spec['plan']['mode']} as_of={report['as_of']} tags={report['tags']} "
                f"drifted={report['tags_drifted']} ({report['fraction_drifted']:.2%}) total "
                f"{report['total_before']} -> {report['total_after']} ratio {ratio:.4%} threshold "
                f"{threshold if threshold is not None else 'none'}; worst: {worst}; report: {path} (+ .md)")
        summary = {k: report[k] for k in ("as_of", "tags", "tags_drifted", "fraction_drifted", "total_before",
                                          "total_after", "abs_diff_total", "drift_ratio", "dry_run")}
        summary.update({"report": path, "threshold": threshold, "mode": spec["plan"]["mode"],
                        "drifted_tags": [t["tag"] for t in report["drifted_tags"]]})
        log_run_record(report, spec["plan"]["mode"],
                       spec.get("flex", {}).get("body", {}).get("launchParameter", {}).get("jobName"),
                       threshold=threshold, report_path=path)
        if threshold is not None and ratio > threshold:
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s", line)
            raise AirflowFailException(f"DRIFT OVER THRESHOLD: {line}")
        log.info("%s", line)
        return summary

    spec >> choose_runner(spec) >> [recount_dataflow, recount_local]
    [recount_dataflow, recount_local] >> publish_drift_report(spec)
