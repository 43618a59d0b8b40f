"""The recount's launcher: a typed request (``hashtags.planning.JobConfig``) → the run's resolved
config (``pipelines.recount.RecountConfig``) → ``build_recount(p, config)`` → submitted or run. The
shape of Google's Flex Template samples: the thin entry file (``pipelines/recount_main.py``, the
template's FLEX_TEMPLATE_PYTHON_PY_FILE and the local DAG task's py_file) calls :func:`main`, which
parses its flags with ``JobConfig.from_parameters``; the backfill CLI builds JobConfigs and calls
:func:`run` in-process (no argv in between).

    python -m pipelines.recount_main --mode=nightly --as_of=2026-11-23 --archive_path=.run/archive \
        --bigtable_project=local-hashtags --bigtable_instance=local --bigtable_table=hashtags \
        --post_state_table=post_state --report_path=artifacts/drift [--drift_threshold=0.05] \
        [--report_only] [--arrived_from=YYYY-MM-DD --arrived_to=YYYY-MM-DD] [Beam options…]

* ``mode=nightly`` without ``arrived_*``: the arrival days come from the latest run record
  BEFORE as_of (``hashtags.planning.plan_nightly``), so a rerun plans what its first attempt did.
  ``reapply`` needs ``arrived_from``/``arrived_to``; ``full_rebuild`` reads the whole archive
  (arrival days up to as_of - 1) from empty prior state.
* The plan is then adjusted to the recorded runs (``hashtags.post_state.resolve``): a run at a
  midnight a run already wrote reads the union of both ranges; the first run is a full rebuild; a
  run before the latest recorded midnight is refused.
* The tags hidden by moderation (``BigtableStore.hidden_tags()``, one index row) are read at
  launch and built into the graph: the job leaves them out of every related list.
* Against the emulator (BIGTABLE_EMULATOR_HOST) missing tables (``hashtags`` and ``post_state``)
  are created first, except in a dry run (``report_only``: compute and report, write nothing,
  record nothing). Against Bigtable the run calls no table admin: terraform creates the tables.
* The JOB writes the drift report (``<report_path>/drift-<as_of>.json`` / ``.md``) and then the run
  record (as_of, mode, arrival range, finished time) as its LAST step, behind a barrier on every
  Bigtable write (``pipelines.recount_steps.report.FinishRunFn``): a run that died left no record
  and is simply run again. One way for every runner, so the local runs exercise the production path.
* Locally (or a Dataflow job this process submitted and can wait for), the launcher waits, reads
  the report the job wrote and returns its exit code. A Flex Template launcher only builds and
  submits the job (Beam's ``DataflowPipelineResult.has_job`` is False, ``wait_until_finish``
  returns at once): it then returns 0 at once; the DAG reads the report after the job is DONE.

Locally it runs on ``FnApiRunner`` (BIGTABLE_EMULATOR_HOST points it at the emulator). On Dataflow:
``--runner=DataflowRunner --project=… --region=… --temp_location=gs://…`` and gs:// archive and
report paths.

Exit codes (the CLI's too): 0 ok; 2 bad input (bad parameters, no archive file in the planned days
— refusing to reset every touched tag to a stale base —, a run refused by ``resolve``); 3 the drift
ratio exceeded ``drift_threshold`` (the counts ARE repaired and the run recorded; the exit is the
alert); 1 the pipeline failed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from hashtags import archive, layout, planning, settings
from hashtags import post_state as ps
from hashtags.planning import JobConfig
from pipelines import drift, recount
from pipelines.recount_steps.read import file_patterns
from pipelines.recount_steps.report import ReportSpec, report_paths
from pipelines.recount_steps.tables import Tables

log = logging.getLogger("pipelines.recount")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DRIFT = 0, 1, 2, 3

# The wire form's parameter names (JobConfig.to_parameters; docker/dataflow/recount-metadata.json):
# the flags the entry file takes. FLAGS may be given bare (``--report_only``) or as ``=true``.
PARAMETERS = ("mode", "as_of", "arrived_from", "arrived_to", "archive_path", "report_path", "bigtable_project",
              "bigtable_instance", "bigtable_table", "post_state_table", "app_profile", "drift_threshold",
              "worst_n", "list_limit")
FLAGS = ("report_only", "allow_empty_archive")


@dataclass
class RecountOutcome:
    exit_code: int
    as_of: dt.datetime
    report: dict[str, Any] | None = None
    report_files: list[str] = field(default_factory=list)
    message: str = ""
    plan: planning.RunPlan | None = None  # what the run executed (after hashtags.post_state.resolve)


# ---- the entry file's flags -------------------------------------------------------------------
def parse_argv(argv: Sequence[str], *, today: dt.date | None = None) -> tuple[JobConfig, list[str]]:
    """The entry file's command line → the JobConfig and the Beam options left over. Raises
    ValueError (the job's parameters, JobConfig.from_parameters) or SystemExit (argparse)."""
    # no abbreviations: a Beam option that is a prefix of one of these must reach Beam untouched
    ap = argparse.ArgumentParser(prog="pipelines/recount_main.py", add_help=False, allow_abbrev=False)
    for name in PARAMETERS:
        ap.add_argument(f"--{name}")
    for name in FLAGS:
        ap.add_argument(f"--{name}", nargs="?", const="true")
    known, beam_args = ap.parse_known_args(list(argv))
    params = {k: v for k, v in vars(known).items() if v is not None}
    params.setdefault("bigtable_instance", settings.LOCAL_INSTANCE)
    params.setdefault("bigtable_table", settings.TABLE)
    params.setdefault("post_state_table", settings.POST_STATE_TABLE)
    config = JobConfig.from_parameters(params, today=today or dt.datetime.now(layout.UTC).date())
    return config, beam_args


def pipeline_options(beam_args: Sequence[str] | PipelineOptions = (), *, project: str | None = None) -> PipelineOptions:
    """Beam's options of the run: FnApiRunner unless a runner is given (a bare DirectRunner first
    tries Prism, which needs the internet); the GCP project defaults to the Bigtable one."""
    options = beam_args if isinstance(beam_args, PipelineOptions) else PipelineOptions(list(beam_args))
    std = options.view_as(StandardOptions)
    if not std.runner:
        std.runner = "FnApiRunner"
    gcp = options.view_as(GoogleCloudOptions)
    gcp.project = gcp.project or project or settings.LOCAL_PROJECT
    return options


# ---- the archive check (the job's and the backfill CLI's) ---------------------------------------
def has_files(patterns: Sequence[str]) -> bool:
    """At least one file matches one of ``patterns``: one bounded match each (limit 1; no listing of
    the archive here: the job matches the files on its workers), local or gs://."""
    for pattern in patterns:
        try:
            found = FileSystems.match([pattern], limits=[1])[0].metadata_list
        except Exception as e:  # BeamIOError "No files found" on some filesystems
            if "no files" in str(e).lower():
                continue
            raise
        if found:
            return True
    return False


def archive_has_files(root: str, plan: planning.RunPlan) -> bool:
    """At least one archive file in the planned days (the whole archive for an open range)."""
    return has_files(file_patterns(root, plan))


def missing_days(root: str, days: Sequence[dt.date]) -> list[dt.date]:
    """The arrival days without an archive file."""
    return [d for d in days if not has_files(archive.partition_glob(root, d))]


# ---- request → resolved config → job ------------------------------------------------------------
class BadInput(ValueError):
    pass


def local_tables() -> bool:
    """The Bigtable emulator (BIGTABLE_EMULATOR_HOST): the run creates missing tables (the local stack
    and tests); against Bigtable it calls no table admin at all."""
    return bool(os.environ.get("BIGTABLE_EMULATOR_HOST"))


def resolve(config: JobConfig, options: PipelineOptions) -> tuple[recount.RecountConfig, str | None]:
    """The request → the graph's config and what ``hashtags.post_state.resolve`` adjusted (a note):
    tables created (locally, unless a dry run) → run records read → the plan narrowed (a nightly)
    and resolved → the hidden tags read. Raises ValueError (PlanRefused, a planning error: exit 2)."""
    from hashtag_store import bigtable as store, post_state as state_store

    project = config.project or options.view_as(GoogleCloudOptions).project
    plan = config.plan
    counts_exist = True
    if local_tables():  # production tables come from terraform: a job never needs table admin
        if not plan.dry_run:
            store.create_table(project, config.instance, config.table)
            store.create_post_state_table(project, config.instance, config.post_state_table)
        else:
            counts_exist = store.table_exists(project, config.instance, config.table)
    records = state_store.run_records(project, config.instance, config.post_state_table,
                                      app_profile=config.app_profile)
    if plan.mode == planning.NIGHTLY and plan.arrived_from is None:
        prior = ps.latest_run(records, before=plan.as_of)
        plan = planning.plan_nightly(plan.as_of, prior.last_run() if prior else None, dry_run=plan.dry_run)
    resolved = ps.resolve(plan, records)
    tables = Tables(project, config.instance, config.table, config.post_state_table, counts_exist,
                    config.app_profile or None)
    hidden = _hidden_tags(project, config.instance, config.table) if counts_exist else frozenset()
    worst_n = config.worst_n if config.worst_n is not None else drift.DEFAULT_WORST_N
    list_limit = config.list_limit if config.list_limit is not None else drift.DEFAULT_LIST_LIMIT
    report = ReportSpec(config.report_path.rstrip("/"), config.drift_threshold, worst_n, resolved.note)
    return recount.RecountConfig(resolved.plan, config.archive, tables, report, fresh=resolved.fresh,
                                 priors=resolved.priors, hidden=hidden,
                                 list_limit=max(list_limit, worst_n)), resolved.note


def _hidden_tags(project: str, instance: str, table: str) -> frozenset[str]:
    """Read once at launch and built into the graph: a tag hidden during a run is left out from the next."""
    from hashtag_store import bigtable as store

    s = store.BigtableStore(project, instance, table)
    try:
        return s.hidden_tags()
    finally:
        s.close()


def is_template_launch(result) -> bool:
    """A result with no job to wait for: a Flex Template launcher (or a classic template's
    creation) only built and submitted the graph (Beam 2.77 DataflowPipelineResult: ``has_job`` is
    ``_job is not None``; without a job ``state`` is DONE and ``wait_until_finish`` returns at once).
    Other runners' results have no ``has_job``: they ran the job."""
    return not getattr(result, "has_job", True)


def run(config: JobConfig, beam_args: Sequence[str] | PipelineOptions = ()) -> RecountOutcome:
    """Run one reconciliation (blocking, unless a template launch); the job writes the drift report
    and records the run. See the module doc."""
    as_of = layout.midnight_utc(config.plan.as_of)
    options = pipeline_options(beam_args, project=config.project)
    try:
        graph, note = resolve(config, options)
    except ValueError as e:  # PlanRefused, a planning error
        return RecountOutcome(EXIT_BAD_INPUT, as_of, message=str(e))
    plan = graph.plan
    if not config.allow_empty_archive and not archive_has_files(graph.archive_root, plan):
        return RecountOutcome(EXIT_BAD_INPUT, as_of, plan=plan, message=(
            f"no archive files for {plan.describe()} under {graph.archive_root}: refusing to run (every "
            "touched tag would be reset to its last base); pass allow_empty_archive to force"))
    t = graph.tables
    log.info("%s; tables %s/%s/%s + %s%s", plan.describe(), t.project, t.instance, t.counts, t.post_state,
             f" ({note})" if note else "")
    p = beam.Pipeline(options=options)
    recount.build_recount(p, graph)
    json_path, md_path = report_paths(graph.report.root, plan.as_of)
    try:
        result = p.run()
        if is_template_launch(result):
            message = (f"template launch: the job was submitted and writes its own report ({json_path}) "
                       "and run record when every write is done; nothing to wait for here")
            log.info("%s", message)
            return RecountOutcome(EXIT_OK, as_of, plan=plan, message=message)
        state = result.wait_until_finish()
    except Exception as e:  # the local runners raise the failing step's error; nothing is recorded
        log.exception("the pipeline failed")
        return RecountOutcome(EXIT_FAILED, as_of, plan=plan, message=f"pipeline failed: {type(e).__name__}: {e}")
    if str(state) not in ("DONE", "PipelineState.DONE"):
        return RecountOutcome(EXIT_FAILED, as_of, plan=plan, message=f"pipeline ended in state {state}")
    report = json.loads(_read_text(json_path))  # written by the job's last step
    line = drift.summary_line(report)
    code = EXIT_DRIFT if report["exceeds_threshold"] else EXIT_OK
    (log.error if code else log.info)("%s", line)
    return RecountOutcome(code, as_of, report, [json_path, md_path], line, plan)


def _read_text(path: str) -> str:
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8")


def log_run_summary(outcome: RecountOutcome, mode: str) -> dict[str, Any] | None:
    """The run's ``recount_run`` record (hashtag_ops.logs; terraform's log-based metrics count it),
    with the drift line as its message; none for a template launch (the job has not run yet: the
    DAG logs the record from the report once the job is done). Returns the record's fields."""
    from hashtag_ops import logs

    if outcome.exit_code == EXIT_OK and outcome.report is None:
        return None
    failed = outcome.exit_code in (EXIT_FAILED, EXIT_BAD_INPUT)
    plan = outcome.plan
    fields = logs.recount_run_fields(
        None if failed else outcome.report, mode=plan.mode if plan else mode,
        job=planning.job_name(plan) if plan else None, status=logs.FAILED if failed else None,
        as_of=outcome.as_of.strftime("%Y-%m-%dT%H:%M:%SZ") if outcome.as_of != layout.EPOCH else None)
    logs.log_recount_run(log, fields, f"recount run {fields['status']}: {outcome.message}")
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    """The entry file's main: flags → JobConfig → :func:`run` → the exit code."""
    from hashtag_ops import logs

    logs.setup("recount")
    # Except Beam's "Created job with id: [...]" (INFO): the only place Airflow's Beam operator and
    # DataflowHook find a Dataflow job id (JOB_ID_PATTERN, providers/google/cloud/hooks/dataflow.py).
    logging.getLogger("apache_beam.runners.dataflow.internal.apiclient").setLevel(logging.INFO)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        config, beam_args = parse_argv(argv)
    except ValueError as e:
        outcome = RecountOutcome(EXIT_BAD_INPUT, layout.EPOCH, message=str(e))
        log_run_summary(outcome, planning.NIGHTLY)
        return EXIT_BAD_INPUT
    outcome = run(config, beam_args)
    for f in outcome.report_files:
        log.info("report: %s", f)
    log_run_summary(outcome, config.plan.mode)
    return outcome.exit_code
