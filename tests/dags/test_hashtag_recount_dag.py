"""The hashtag_recount DAG without running a job: it parses (DagBag, no import errors), imports no
Beam (nor the hashtags text/regex code) and does no I/O at parse time; schedule, catch-up,
concurrency, retries and task order; the PRODUCTION launch as the operator objects the DAG builds
render it for a run with the Composer Variables set (template spec, service account, staging and
temp locations, job name per night, kept report location); and the launcher's retry behaviour (no
second job for a night) against a fake Dataflow API. Nothing here calls GCP."""
from __future__ import annotations

import copy
import datetime as dt
import subprocess
import sys

import pytest

from tests.dags.conftest import DAGS, ROOT

UTC = dt.timezone.utc
NIGHT = dt.date(2026, 11, 23)

# What terraform/composer.tf sets on Composer (shapes of the real values).
PROD = {
    "hashtags_runner": "DataflowRunner",
    "hashtags_project": "prod-proj",
    "hashtags_region": "europe-west1",
    "hashtags_archive": "gs://prod-proj-hashtags-archive/post-events",
    "hashtags_bigtable_instance": "hashtags-prod",
    "hashtags_table": "hashtags",
    "hashtags_post_state_table": "post_state",
    "hashtags_temp_location": "gs://prod-proj-hashtags-dataflow-temp/recount",
    "hashtags_staging_location": "gs://prod-proj-hashtags-dataflow-staging/staging",
    "hashtags_service_account": "hashtags-recount@prod-proj.iam.gserviceaccount.com",
    "hashtags_recount_template": "gs://prod-proj-hashtags-dataflow-staging/templates/recount-v42.json",
    "hashtags_sdk_container_image": "europe-west1-docker.pkg.dev/prod-proj/hashtags/streaming:v42",
    "hashtags_report_location": "gs://prod-proj-hashtags-reports/drift",
    "hashtags_drift_threshold": "0.05",
    "hashtags_bigtable_app_profile": "writer",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["hashtag_recount"]


@pytest.fixture
def h(monkeypatch):
    monkeypatch.delenv("HASHTAGS_REPORT_PATH", raising=False)
    import hashtag_recount

    return hashtag_recount


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "hashtag_recount" in dagbag.dags


def test_dag_file_imports_no_beam_no_regex_and_reads_no_variable():
    """Parse in a fresh interpreter: apache_beam, hashtags.text and regex are never imported (the
    Composer copy of hashtags/ holds only the pure planning modules) and no Variable is read."""
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(DAGS)!r}, {str(ROOT)!r}]\n"
        "from airflow.sdk import Variable\n"
        "def boom(*a, **k): raise AssertionError('Variable.get at parse time')\n"
        "Variable.get = boom\n"
        "import hashtag_recount\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'regex') or m == 'hashtags.text')\n"
        "print('BAD', bad)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "BAD []" in out.stdout


def test_schedule_catchup_concurrency(dag):
    assert dag.dag_id == "hashtag_recount"
    assert dag.schedule == "0 2 * * *"
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"  # a cron run's logical date = its run time
    assert str(dag.timezone) == "UTC"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.params.keys()) == {"from_date", "to_date", "as_of", "full_rebuild", "dry_run"}


def test_task_order_and_retries(dag):
    t = dag.task_dict
    assert [x.task_id for x in dag.topological_sort()][:2] == ["check_archive", "choose_runner"]
    assert t["choose_runner"].downstream_task_ids == {"recount_dataflow", "recount_local"}
    assert t["publish_drift_report"].upstream_task_ids == {"check_archive", "recount_dataflow", "recount_local"}
    assert t["publish_drift_report"].trigger_rule == "none_failed_min_one_success"  # after the branch taken
    assert (t["check_archive"].retries, t["recount_dataflow"].retries, t["recount_local"].retries,
            t["publish_drift_report"].retries) == (6, 2, 2, 0)
    for task in (t["check_archive"], t["recount_dataflow"], t["recount_local"]):
        assert task.retry_exponential_backoff == 2.0
        assert task.retry_delay == dt.timedelta(minutes=5)
        assert task.max_retry_delay == dt.timedelta(hours=1)


def test_local_operator_uses_the_pipelines_interpreter(dag):
    from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

    op = dag.task_dict["recount_local"]
    assert isinstance(op, BeamRunPythonPipelineOperator)
    assert op.py_interpreter == str(ROOT / ".venv" / "bin" / "python")
    assert op.py_file == str(ROOT / "pipelines" / "recount_main.py")


def test_post_state_table_default_is_the_settings_name(h):
    sys.path.insert(0, str(ROOT))
    from hashtags import settings

    assert h.VARIABLE_DEFAULTS["hashtags_post_state_table"] == settings.POST_STATE_TABLE
    assert h.VARIABLE_DEFAULTS["hashtags_bigtable_app_profile"] == ""  # locally: no profile (emulator)


# ---- the production launch, as rendered for a run ---------------------------------------------
class FakeTI:
    def __init__(self, xcom=None):
        self.xcom, self.pushed = xcom, {}

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        assert task_ids == "check_archive"
        return self.xcom

    def xcom_push(self, key, value, **_):
        self.pushed[key] = value


def planned_spec(h, monkeypatch, params, variables=PROD, logical=dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC)):
    """check_archive's XCom for a run: its own planning + config code, with the Composer
    Variables read through Variable.get (env AIRFLOW_VAR_*), and the archive check stubbed."""
    for name, value in variables.items():
        monkeypatch.setenv("AIRFLOW_VAR_" + name.upper(), value)
    from hashtags import planning

    class Run:
        logical_date, run_after = logical, logical

    plan = planning.plan_from_params(params, h.run_day(Run))
    return h.launch_spec(plan, h.read_config(h._variable))


def rendered(dag, task_id, spec):
    op = copy.deepcopy(dag.task_dict[task_id])
    op.render_template_fields({"ti": FakeTI(spec), "task_instance": FakeTI(spec)})
    return op


def test_production_nightly_launch_is_the_recount_flex_template(h, dag, monkeypatch):
    spec = planned_spec(h, monkeypatch, {})
    assert spec["dataflow"] is True and "pipeline_options" not in spec
    op = rendered(dag, "recount_dataflow", spec)
    assert isinstance(op, h.DataflowStartFlexTemplateOperator)
    # deferrable: the triggerer waits for the job (the operator sets wait_until_finished False with it)
    assert op.append_job_name is False and op.deferrable is True and op.wait_until_finished is False
    assert op.cancel_on_kill is True
    assert (op.project_id, op.location, op.night_prefix) == ("prod-proj", "europe-west1", "hashtag-recount-20261123")
    launch = op.body["launchParameter"]
    assert launch["jobName"] == "hashtag-recount-20261123-nightly"
    assert launch["containerSpecGcsPath"] == PROD["hashtags_recount_template"]
    assert launch["environment"] == {
        "serviceAccountEmail": PROD["hashtags_service_account"],
        "stagingLocation": PROD["hashtags_staging_location"],
        "tempLocation": PROD["hashtags_temp_location"],
        "sdkContainerImage": PROD["hashtags_sdk_container_image"],
        "additionalUserLabels": {"app": "hashtags", "mode": "nightly"},
    }
    # A nightly names no arrival range: the job plans it from its own run record.
    assert launch["parameters"] == {
        "mode": "nightly", "as_of": "2026-11-23",
        "archive_path": PROD["hashtags_archive"], "report_path": "gs://prod-proj-hashtags-reports/drift",
        "bigtable_project": "prod-proj", "bigtable_instance": "hashtags-prod", "bigtable_table": "hashtags",
        "post_state_table": "post_state", "app_profile": "writer",  # the prior reads' single-cluster profile
    }
    assert all(isinstance(v, str) for v in launch["parameters"].values())  # template parameters are strings
    assert spec["report_path"] == "gs://prod-proj-hashtags-reports/drift"  # where publish_drift_report reads


def test_production_job_name_is_per_night_and_plan(h, dag, monkeypatch):
    names = {}
    for label, params, logical in [
        ("next night", {}, dt.datetime(2026, 11, 24, 2, 0, tzinfo=UTC)),
        ("reapply", {"from_date": "2026-11-01", "to_date": "2026-11-03", "dry_run": True}, None),
        ("rebuild", {"full_rebuild": True, "as_of": "2026-11-20"}, None),
    ]:
        spec = planned_spec(h, monkeypatch, params, logical=logical or dt.datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
        names[label] = rendered(dag, "recount_dataflow", spec).body["launchParameter"]
    assert names["next night"]["jobName"] == "hashtag-recount-20261124-nightly"
    assert names["reapply"]["jobName"] == "hashtag-recount-20261123-reapply-20261101-20261103-dry"
    assert names["reapply"]["parameters"]["arrived_from"] == "2026-11-01"
    assert names["reapply"]["parameters"]["arrived_to"] == "2026-11-03"
    assert names["reapply"]["parameters"]["report_only"] == "true"
    assert names["rebuild"]["jobName"] == "hashtag-recount-20261120-full-rebuild"
    assert "report_only" not in names["rebuild"]["parameters"]


def test_local_launch_renders_the_job_flags(h, dag, monkeypatch):
    """The local task's options are the same wire form as the template's parameters
    (planning.JobConfig.to_parameters): what the entry file parses back."""
    local = {k: v for k, v in PROD.items() if k not in ("hashtags_runner", "hashtags_bigtable_app_profile")}
    local.update(hashtags_archive="/data/archive", hashtags_report_location="/data/drift")
    spec = planned_spec(h, monkeypatch, {"dry_run": True}, variables=local)
    assert spec["dataflow"] is False and "flex" not in spec
    op = rendered(dag, "recount_local", spec)
    assert op.runner == "FnApiRunner"
    assert op.pipeline_options == {
        "mode": "nightly", "as_of": "2026-11-23", "report_only": "true", "archive_path": "/data/archive",
        "report_path": "/data/drift", "bigtable_project": "prod-proj", "bigtable_instance": "hashtags-prod",
        "bigtable_table": "hashtags", "post_state_table": "post_state"}


@pytest.mark.parametrize("override, msg", [
    ({"hashtags_report_location": "gs://prod-proj-hashtags-dataflow-temp/recount/drift"}, "not kept"),
    ({"hashtags_report_location": "/tmp/drift"}, "gs:// location"),
    ({"hashtags_service_account": ""}, "hashtags_service_account is required"),
    ({"hashtags_staging_location": ""}, "hashtags_staging_location is required"),
    ({"hashtags_recount_template": ""}, "hashtags_recount_template is required"),
])
def test_production_config_refuses_unsafe_or_missing_settings(h, override, msg):
    from hashtags import planning

    with pytest.raises(ValueError, match=msg):
        h.launch_spec(planning.plan_nightly(NIGHT, None), dict(PROD, **override))


def test_missing_days(tmp_path):
    import hashtag_recount as h

    (tmp_path / "arrived=2026-11-21").mkdir()
    (tmp_path / "arrived=2026-11-21" / "x.jsonl.gz").write_bytes(b"")
    (tmp_path / "arrived=2026-11-22").mkdir()
    (tmp_path / "arrived=2026-11-22" / "tmp.txt").write_text("")
    days = [dt.date(2026, 11, 21), dt.date(2026, 11, 22), dt.date(2026, 11, 23)]
    assert h.missing_days(str(tmp_path), days, h._has_archive_files) == days[1:]
    assert h._has_archive_files(f"{tmp_path}/arrived=*") is True


# ---- retries never start a second job (fake Dataflow API) -------------------------------------
class FakeDataflow:
    """The slice of the Dataflow discovery client and DataflowHook the launcher uses."""
    num_retries = 0

    def __init__(self, active):
        self.active, self.launched, self.waited = list(active), [], []

    # discovery client: get_conn().projects().locations().jobs().list(...).execute()
    def get_conn(self):
        return self

    def projects(self):
        return self

    def locations(self):
        return self

    def jobs(self):
        return self

    def list(self, projectId, location, filter):  # noqa: A002 - the API's name
        assert (projectId, location, filter) == ("prod-proj", "europe-west1", "ACTIVE")
        return self

    def execute(self, num_retries=0):
        return {"jobs": self.active}

    def list_next(self, previous_request, previous_response):
        return None

    # DataflowHook
    def launch_job_with_flex_template(self, body, location, project_id):  # the deferrable launch
        return self.start_flex_template(body, location, project_id)

    def start_flex_template(self, body, location, project_id, on_new_job_callback=None):
        job = {"id": f"job-{len(self.launched) + 1}", "name": body["launchParameter"]["jobName"],
               "projectId": project_id, "location": location, "currentState": "JOB_STATE_DONE"}
        self.launched.append(copy.deepcopy(body))
        return job

    @staticmethod
    def extract_job_id(job):
        return job["id"]

    def wait_for_done(self, job_name, location, project_id, job_id=None, multiple_jobs=False):
        self.waited.append((job_name, job_id))

    def get_job(self, job_id, project_id, location):
        return {"id": job_id, "currentState": "JOB_STATE_DONE"}


def launcher_for(h, dag, monkeypatch, fake):
    op = rendered(dag, "recount_dataflow", planned_spec(h, monkeypatch, {}))
    op.__dict__["hook"] = fake  # the operator's cached_property
    ti = FakeTI()
    return op, {"ti": ti, "task_instance": ti}


def job(name, state="JOB_STATE_RUNNING", id_="old-1"):
    return {"id": id_, "name": name, "currentState": state, "projectId": "prod-proj", "location": "europe-west1"}


def deferred(op, ctx):
    """execute → the TaskDeferred it raises (the launch returns at once; the triggerer waits)."""
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as e:
        op.execute(ctx)
    return e.value


def test_first_attempt_launches_once_with_the_exact_name(h, dag, monkeypatch):
    fake = FakeDataflow(active=[job("hashtag-recount-20261122-nightly")])  # yesterday's, still running: not ours
    op, ctx = launcher_for(h, dag, monkeypatch, fake)
    d = deferred(op, ctx)
    assert [b["launchParameter"]["jobName"] for b in fake.launched] == ["hashtag-recount-20261123-nightly"]
    assert d.trigger.job_id == "job-1" and d.trigger.cancel_on_kill is True and d.method_name == "execute_complete"
    result = op.execute_complete(ctx, {"status": "success", "job_id": "job-1", "message": "done"})
    assert result["id"] == "job-1" and ctx["ti"].pushed["job_id"] == "job-1"


def test_retry_adopts_its_running_job_instead_of_launching_a_second(h, dag, monkeypatch):
    fake = FakeDataflow(active=[job("hashtag-recount-20261123-nightly", id_="first-attempt")])
    op, ctx = launcher_for(h, dag, monkeypatch, fake)
    d = deferred(op, ctx)
    assert fake.launched == [] and fake.waited == []  # waits in the triggerer, on the adopted job
    assert d.trigger.job_id == "first-attempt" and ctx["ti"].pushed["job_id"] == "first-attempt"
    assert op.job["id"] == "first-attempt"  # on_kill cancels the adopted job
    result = op.execute_complete(ctx, {"status": "success", "job_id": "first-attempt", "message": "done"})
    assert result["id"] == "first-attempt"


def test_another_job_of_the_same_night_blocks_the_launch(h, dag, monkeypatch):
    from airflow.exceptions import AirflowException

    fake = FakeDataflow(active=[job("hashtag-recount-20261123-reapply-20261101-20261103")])
    op, ctx = launcher_for(h, dag, monkeypatch, fake)
    with pytest.raises(AirflowException, match="another recount job of this night is active"):
        op.execute(ctx)
    assert fake.launched == [] and fake.waited == []


def test_provider_finds_beams_job_id_line():
    """BeamRunPythonPipelineOperator finds a Dataflow job id only in the launcher's log line
    'Created job with id: [...]' (apache_beam/runners/dataflow/internal/apiclient.py, INFO): the
    provider's pattern matches Beam 2.77's format (recount_main keeps that logger at INFO)."""
    from airflow.providers.google.cloud.hooks.dataflow import JOB_ID_PATTERN

    import apache_beam.runners.dataflow.internal.apiclient as apiclient

    source = open(apiclient.__file__, encoding="utf-8").read()
    assert "_LOGGER.info('Created job with id: [%s]', response.id)" in source
    m = JOB_ID_PATTERN.search("INFO:apache_beam.runners.dataflow.internal.apiclient:Created job with id: "
                              "[2026-11-23_02_00_01-123]")
    assert m and m.group("job_id_python") == "2026-11-23_02_00_01-123"


def test_launch_parameters_are_declared_in_the_recount_template_metadata(h, monkeypatch):
    """Dataflow validates a Flex Template launch against the spec's metadata: every parameter the
    DAG sends is declared there and matches its regexes; every required one is sent."""
    import json
    import re

    meta = json.loads((ROOT / "docker" / "dataflow" / "recount-metadata.json").read_text())
    declared = {p["name"]: p for p in meta["parameters"]}
    required = {n for n, p in declared.items() if not p.get("isOptional")}
    for params in ({}, {"dry_run": True}, {"from_date": "2026-11-01", "to_date": "2026-11-03"}, {"full_rebuild": True}):
        sent = planned_spec(h, monkeypatch, params)["flex"]["body"]["launchParameter"]["parameters"]
        assert set(sent) <= set(declared), set(sent) - set(declared)
        assert required <= set(sent), required - set(sent)
        for name, value in sent.items():
            assert all(re.search(rx, value) for rx in declared[name].get("regexes", [])), (name, value)


def test_the_composer_dag_folder_parses_without_the_project(tmp_path):
    """The DAG folder exactly as terraform/composer.tf uploads it (local.dag_files), parsed by a
    fresh interpreter that cannot see this project, the way Airflow 3's DAG processor and task runner
    parse the dags-folder bundle (BundleDagBag: the bundle's folder is put on sys.path,
    airflow/dag_processing/processor.py, sdk/execution_time/task_runner.py): no import errors, one
    DAG, no regex needed, and the copied hashtags/ modules are not scanned as DAG files."""
    import os
    import re
    import shutil

    tf = (ROOT / "terraform" / "composer.tf").read_text()
    block = re.search(r"dag_files = \{(.*?)\n  \}", tf, re.S).group(1)
    files = dict(re.findall(r'"(dags/[^"]+)"\s*=\s*"\$\{path\.module\}/\.\./([^"]+)"', block))
    assert set(files) >= {"dags/hashtag_recount.py", "dags/hashtags/planning.py", "dags/.airflowignore"}
    for dest, src in files.items():
        (tmp_path / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / src, tmp_path / dest)
    code = (
        "import sys\n"
        f"assert not any(p.rstrip('/') == {str(ROOT)!r} for p in sys.path), sys.path\n"
        # as the DAG processor and the task runner parse a bundle: its folder goes on sys.path
        "from pathlib import Path\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        f"bag = BundleDagBag({str(tmp_path / 'dags')!r}, bundle_path=Path({str(tmp_path / 'dags')!r}))\n"
        "print('ERRORS', bag.import_errors)\n"
        "print('DAGS', sorted(bag.dag_ids))\n"
        "print('FILES', sorted(bag.dagbag_stats[i].file for i in range(len(bag.dagbag_stats))))\n"
        "print('TEXT', 'hashtags.text' in sys.modules or 'regex' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HASHTAGS_PROJECT_ROOT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ERRORS {}" in out.stdout and "DAGS ['hashtag_recount']" in out.stdout, out.stdout
    assert "TEXT False" in out.stdout
    files_line = [ln for ln in out.stdout.splitlines() if ln.startswith("FILES")][0]
    assert "hashtags" not in files_line.replace("hashtag_recount", ""), files_line
