"""The reconciliation job's main: plan → tables → the job (pipelines.recount), which writes its own
drift report and then its run record as its last step.

For the backfill CLI and other callers: ``run_recount(argv: list[str]) -> RecountOutcome`` runs ONE
reconciliation (blocking, except a template launch: below) with these flags and returns ``RecountOutcome(exit_code, as_of: datetime,
report: dict | None, report_files: list[str], message: str, plan: RunPlan | None)``.

    python -m pipelines.recount_main --mode=nightly --as_of=2026-11-23 --archive_path=.run/archive \
        --project=local-hashtags --bigtable_instance=local --bigtable_table=hashtags \
        [--post_state_table=post_state] --report_path=artifacts/drift [--drift_threshold=0.05] \
        [--report_only] [--arrived_from=YYYY-MM-DD --arrived_to=YYYY-MM-DD]

* ``--mode=nightly`` without ``--arrived_*``: the arrival days come from the latest run record
  BEFORE as_of (``hashtags.planning.plan_nightly``), so a rerun plans what its first attempt did.
  ``--mode=reapply`` needs ``--arrived_from``/``--arrived_to``; ``--mode=full_rebuild`` reads the
  whole archive (arrival days up to as_of - 1) from empty prior state.
* The plan is then adjusted to the recorded runs (``hashtags.post_state.resolve``): a run at a
  midnight a run already wrote reads the union of both ranges; the first run is a full rebuild; a
  run before the latest recorded midnight is refused.
* The tags hidden by moderation (``BigtableStore.hidden_tags()``, one index row) are read at
  launch and built into the graph: the job leaves them out of every related list.
* Against the emulator (BIGTABLE_EMULATOR_HOST) missing tables (``hashtags`` and ``post_state``)
  are created first, except in a dry run (``--report_only``: compute and report, write nothing,
  record nothing). Against Bigtable the run calls no table admin: terraform creates the tables.
* The JOB writes the drift report (``<report_path>/drift-<as_of>.json`` / ``.md``) and then the run
  record (as_of, mode, arrival range, finished time) as its LAST step, behind a barrier on every
  Bigtable write (``pipelines.recount.FinishRunFn``): a run that died left no record and is simply
  run again. One way for every runner, so the local runs exercise the production path.
* Locally (or a Dataflow job this process submitted and can wait for), the main waits, reads the
  report the job wrote and returns its exit code. A Flex Template launcher only builds and submits
  the job (Beam's ``DataflowPipelineResult.has_job`` is False, ``wait_until_finish`` returns at
  once): the main then returns 0 at once; the DAG reads the report after the job is DONE.

Locally it runs on ``FnApiRunner`` (BIGTABLE_EMULATOR_HOST points it at the emulator). On Dataflow:
``--runner=DataflowRunner --project=… --region=… --temp_location=gs://… --archive_path=gs://…
--report_path=gs://…``.

Exit codes: 0 ok; 2 bad input (bad flags, no archive file in the planned days — refusing to reset
every tag to a stale base —, a run refused by ``resolve``); 3 the drift ratio exceeded
``--drift_threshold`` (the counts ARE repaired and the run recorded; the exit is the alert);
1 the pipeline failed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import sys

if not __package__:  # run as a file (Airflow's BeamRunPythonPipelineOperator): make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from hashtags import layout, planning, settings
from hashtags import post_state as ps
from pipelines import drift, recount
from pipelines.options import StreamingOptions

log = logging.getLogger("pipelines.recount")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DRIFT = 0, 1, 2, 3


def _flag(value) -> bool:
    """``--flag``, ``--flag=true`` and ``--flag=false`` all work (Airflow renders options as text)."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "y", "on", ""):
        return True
    if v in ("0", "false", "no", "n", "off", "none"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _optional_float(value) -> float | None:
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    return float(value)


class RecountOptions(PipelineOptions):
    """The reconciliation's own options. The shared ones (--archive_path, --bigtable_project,
    --bigtable_instance, --bigtable_table) are StreamingOptions' (pipelines/options.py): Beam
    registers every PipelineOptions subclass in one parser, so a name may be defined only once."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--mode", default=planning.NIGHTLY, choices=planning.MODES,
                            help="nightly (incremental), reapply (--arrived_from/--arrived_to) or full_rebuild")
        parser.add_argument("--as_of", default=None,
                            help="YYYY-MM-DD: the midnight (UTC) the run counts up to (default: today UTC)")
        parser.add_argument("--arrived_from", default=None, help="First arrival day to read (YYYY-MM-DD)")
        parser.add_argument("--arrived_to", default=None, help="Last arrival day to read (YYYY-MM-DD)")
        parser.add_argument("--post_state_table", default=settings.POST_STATE_TABLE,
                            help="The per-post state table (same instance as --bigtable_table)")
        parser.add_argument("--report_path", default="artifacts/drift",
                            help="Folder (local or gs://) for drift-<as_of>.json/.md")
        parser.add_argument("--drift_threshold", type=_optional_float, default=None,
                            help="Fail (exit 3) when the drift ratio sum|before-after| / sum after exceeds this")
        parser.add_argument("--worst_n", type=int, default=drift.DEFAULT_WORST_N,
                            help="Tags in the Markdown table")
        parser.add_argument("--list_limit", type=int, default=drift.DEFAULT_LIST_LIMIT,
                            help="Drifted tags listed in the JSON report (worst first)")
        parser.add_argument("--report_only", nargs="?", const=True, default=False, type=_flag,
                            help="Dry run: compute and report, write nothing to the tables "
                                 "(Beam's own --dry_run means something else)")
        parser.add_argument("--app_profile", default=None,
                            help="Bigtable app profile of the reads of the run's priors (production: "
                                 f"{settings.WRITER_APP_PROFILE!r}, single-cluster; none locally)")
        parser.add_argument("--allow_empty_archive", nargs="?", const=True, default=False, type=_flag,
                            help="Run even when the planned arrival days hold no archive file")


@dataclass
class RecountOutcome:
    exit_code: int
    as_of: dt.datetime
    report: dict[str, Any] | None = None
    report_files: list[str] = field(default_factory=list)
    message: str = ""
    plan: planning.RunPlan | None = None  # what the run executed (after hashtags.post_state.resolve)


def _read_text(path: str) -> str:
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8")


def _pipeline_options(argv: list[str]) -> PipelineOptions:
    options = PipelineOptions(argv)
    std = options.view_as(StandardOptions)
    if not std.runner:
        std.runner = "FnApiRunner"  # a bare DirectRunner first tries Prism (needs the internet)
    gcp = options.view_as(GoogleCloudOptions)
    gcp.project = gcp.project or settings.LOCAL_PROJECT
    return options


class BadInput(ValueError):
    pass


def requested_plan(opts: RecountOptions, last_run: planning.LastRun | None) -> planning.RunPlan:
    """The plan the flags ask for (before ``resolve``). ``last_run``: the latest record before as_of."""
    as_of = planning.parse_day(opts.as_of) if opts.as_of else dt.datetime.now(layout.UTC).date()
    first, last = planning.optional_day(opts.arrived_from), planning.optional_day(opts.arrived_to)
    dry = bool(opts.report_only)
    if opts.mode == planning.FULL_REBUILD:
        if first or last:
            raise BadInput("--arrived_from/--arrived_to do not go with --mode=full_rebuild (it reads every day)")
        return planning.plan_full_rebuild(as_of, dry_run=dry)
    if opts.mode == planning.REAPPLY or first or last:
        if not (first and last):
            raise BadInput("give both --arrived_from and --arrived_to")
        plan = planning.plan_reapply(first, last, as_of, dry_run=dry)
        return dataclasses.replace(plan, mode=opts.mode)  # a nightly with an explicit range stays a nightly
    return planning.plan_nightly(as_of, last_run, dry_run=dry)


def archive_has_files(root: str, plan: planning.RunPlan) -> bool:
    """At least one archive file in the planned days: one match per pattern, limited to one file
    (no listing of the archive on the launcher; the job matches the files on its workers)."""
    for pattern in recount.file_patterns(root, plan):
        try:
            found = FileSystems.match([pattern], limits=[1])[0].metadata_list
        except Exception as e:  # BeamIOError "No files found" on some filesystems
            if "no files" in str(e).lower():
                continue
            raise
        if found:
            return True
    return False


@dataclass(frozen=True)
class _Job:
    """Everything a run needs, resolved from the flags and the run records."""
    resolved: ps.Resolved
    tables: recount.Tables
    archive_root: str
    report_root: str
    hidden: frozenset[str] = frozenset()  # tags hidden by moderation: never related (read at launch)


def _prepare(options: PipelineOptions) -> _Job:
    """Flags → tables created (unless a dry run) → records read → the resolved plan. Raises
    BadInput / ValueError / PlanRefused (exit 2)."""
    from hashtag_store import bigtable as store, post_state as state_store

    opts = options.view_as(RecountOptions)
    shared = options.view_as(StreamingOptions)
    if not shared.archive_path:
        raise BadInput("--archive_path is required")
    project = shared.bigtable_project or options.view_as(GoogleCloudOptions).project
    instance = shared.bigtable_instance
    counts_exist = True
    if local_tables():  # production tables come from terraform: a job never needs table admin
        if not opts.report_only:
            store.create_table(project, instance, shared.bigtable_table)
            store.create_post_state_table(project, instance, opts.post_state_table)
        else:
            counts_exist = store.table_exists(project, instance, shared.bigtable_table)
    records = state_store.run_records(project, instance, opts.post_state_table, app_profile=opts.app_profile)
    as_of = planning.parse_day(opts.as_of) if opts.as_of else dt.datetime.now(layout.UTC).date()
    prior = ps.latest_run(records, before=as_of)
    plan = requested_plan(opts, prior.last_run() if prior else None)
    resolved = ps.resolve(plan, records)
    tables = recount.Tables(project, instance, shared.bigtable_table, opts.post_state_table, counts_exist,
                            opts.app_profile or None)
    hidden = _hidden_tags(project, instance, shared.bigtable_table) if counts_exist else frozenset()
    return _Job(resolved, tables, shared.archive_path, opts.report_path.rstrip("/"), hidden)


def local_tables() -> bool:
    """The Bigtable emulator (BIGTABLE_EMULATOR_HOST): the run creates missing tables (the local stack
    and tests); against Bigtable it calls no table admin at all."""
    return bool(os.environ.get("BIGTABLE_EMULATOR_HOST"))


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


def run_recount(argv: list[str]) -> RecountOutcome:
    """Run one reconciliation (blocking, unless a template launch); the job writes the drift report
    and records the run. See the module doc."""
    options = _pipeline_options(argv)
    opts = options.view_as(RecountOptions)
    try:
        as_of = recount.as_of_time(opts.as_of or dt.datetime.now(layout.UTC).date())
    except ValueError as e:
        return RecountOutcome(EXIT_BAD_INPUT, layout.EPOCH, message=str(e))
    try:
        job = _prepare(options)
    except ValueError as e:  # BadInput, PlanRefused, a planning error
        return RecountOutcome(EXIT_BAD_INPUT, as_of, message=str(e))
    plan = job.resolved.plan
    if not opts.allow_empty_archive and not archive_has_files(job.archive_root, plan):
        return RecountOutcome(EXIT_BAD_INPUT, as_of, plan=plan, message=(
            f"no archive files for {plan.describe()} under {job.archive_root}: refusing to run (every "
            "touched tag would be reset to its last base); pass --allow_empty_archive to force"))
    log.info("%s; tables %s/%s/%s + %s%s", plan.describe(), job.tables.project, job.tables.instance,
             job.tables.counts, job.tables.post_state, f" ({job.resolved.note})" if job.resolved.note else "")
    p = beam.Pipeline(options=options)
    spec = recount.ReportSpec(job.report_root, opts.drift_threshold, opts.worst_n, job.resolved.note)
    recount.build_recount(p, archive_root=job.archive_root, plan=plan, fresh=job.resolved.fresh,
                          tables=job.tables, report=spec,
                          list_limit=max(opts.list_limit, opts.worst_n),
                          hidden=job.hidden, priors=job.resolved.priors)
    json_path, md_path = recount.report_paths(job.report_root, plan.as_of)
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


def main(argv: list[str] | None = None) -> int:
    from hashtag_ops import logs

    logs.setup("recount")
    # Except Beam's "Created job with id: [...]" (INFO): the only place Airflow's Beam operator and
    # DataflowHook find a Dataflow job id (JOB_ID_PATTERN, providers/google/cloud/hooks/dataflow.py).
    logging.getLogger("apache_beam.runners.dataflow.internal.apiclient").setLevel(logging.INFO)
    argv = sys.argv[1:] if argv is None else argv
    outcome = run_recount(argv)
    for f in outcome.report_files:
        log.info("report: %s", f)
    log_run_summary(outcome, PipelineOptions(argv).view_as(RecountOptions).mode)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
