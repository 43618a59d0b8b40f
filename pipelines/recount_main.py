"""The recount job's main: archive → exact counts as of a UTC midnight → ``counts:base`` + drift report.

    python -m pipelines.recount_main --archive_path=.run/archive --as_of=2026-11-23 \
        --project=local-hashtags --bigtable_instance=local --bigtable_table=hashtags \
        --report_path=artifacts/drift [--drift_threshold=0.05] [--report_only]

Locally it runs on ``FnApiRunner`` (the default here; BIGTABLE_EMULATOR_HOST points it at the
emulator). On Dataflow: ``--runner=DataflowRunner --project=… --region=… --temp_location=gs://…
--setup_file=./setup.py --archive_path=gs://… --report_path=gs://…``.

Exit codes: 0 ok; 2 bad input (e.g. no archive files before as_of — refusing to zero every tag);
3 the drift ratio exceeded ``--drift_threshold`` (the counts ARE repaired; the exit is the alert);
1 the pipeline failed.
"""
from __future__ import annotations

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

from hashtags import layout, settings
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
    """The recount's own options. The shared ones (--archive_path, --bigtable_project,
    --bigtable_instance, --bigtable_table) are StreamingOptions' (pipelines/options.py): Beam
    registers every PipelineOptions subclass in one parser, so a name may be defined only once."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--as_of", default=None,
                            help="YYYY-MM-DD: count events before this day's midnight UTC (default: today UTC)")
        parser.add_argument("--report_path", default="artifacts/drift",
                            help="Folder (local or gs://) for drift-<as_of>.json/.md")
        parser.add_argument("--drift_threshold", type=_optional_float, default=None,
                            help="Fail (exit 3) when the drift ratio sum|before-after| / sum after exceeds this")
        parser.add_argument("--worst_n", type=int, default=drift.DEFAULT_WORST_N,
                            help="Tags in the Markdown table")
        parser.add_argument("--list_limit", type=int, default=drift.DEFAULT_LIST_LIMIT,
                            help="Drifted tags listed in the JSON report (worst first)")
        parser.add_argument("--report_only", nargs="?", const=True, default=False, type=_flag,
                            help="Dry run: compute and report, write nothing to the table "
                                 "(Beam's own --dry_run means something else)")
        parser.add_argument("--post_buckets", type=int, default=recount.DEFAULT_POST_BUCKETS,
                            help="Buckets of posts for the latest-event-per-post step: its parallelism after "
                                 "the shuffle; each bucket's posts are merged in one worker's memory "
                                 "(raise it for archives of billions of events)")
        parser.add_argument("--allow_empty_archive", nargs="?", const=True, default=False, type=_flag,
                            help="Run even when no archive file precedes as_of (would zero every tag)")


@dataclass
class RecountOutcome:
    exit_code: int
    as_of: dt.datetime
    report: dict[str, Any] | None = None
    report_files: list[str] = field(default_factory=list)
    message: str = ""


def _write_text(path: str, text: str) -> None:
    if "://" not in path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


def _read_text(path: str) -> str:
    with FileSystems.open(path) as f:
        return f.read().decode("utf-8")


def _metric(result, name: str, namespace: str = recount.NAMESPACE) -> int | None:
    try:
        from apache_beam.metrics.metric import MetricsFilter

        found = result.metrics().query(MetricsFilter().with_namespace(namespace).with_name(name))["counters"]
    except Exception:  # a runner without metrics
        return None
    if not found:
        return 0
    return int(sum((c.committed if c.committed is not None else c.attempted) or 0 for c in found))


def _pipeline_options(argv: list[str]) -> PipelineOptions:
    options = PipelineOptions(argv)
    std = options.view_as(StandardOptions)
    if not std.runner:
        std.runner = "FnApiRunner"  # a bare DirectRunner first tries Prism (needs the internet)
    gcp = options.view_as(GoogleCloudOptions)
    gcp.project = gcp.project or settings.LOCAL_PROJECT
    return options


def run_recount(argv: list[str], *, files: list[str] | None = None) -> RecountOutcome:
    """Run one recount (blocking) and write the drift report. ``files`` overrides the archive listing."""
    options = _pipeline_options(argv)
    opts = options.view_as(RecountOptions)
    shared = options.view_as(StreamingOptions)
    as_of = recount.as_of_time(opts.as_of or dt.datetime.now(layout.UTC).date())
    as_of_s = as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    if files is None:
        if not shared.archive_path:
            return RecountOutcome(EXIT_BAD_INPUT, as_of, message="--archive_path is required")
        files = recount.files_before((p for p, _ in recount.list_archive(shared.archive_path)), as_of)
    if not files and not opts.allow_empty_archive:
        msg = (f"no archive files before {as_of_s} under {shared.archive_path}: refusing to recount "
               "(every tag would get a base of 0); pass --allow_empty_archive to force")
        return RecountOutcome(EXIT_BAD_INPUT, as_of, message=msg)

    project = shared.bigtable_project or options.view_as(GoogleCloudOptions).project
    bt = dict(project_id=project, instance_id=shared.bigtable_instance, table_id=shared.bigtable_table)
    day = as_of.strftime("%Y-%m-%d")
    report_root = opts.report_path.rstrip("/")
    summary_path = f"{report_root}/.work/drift-{day}-summary.json"
    if "://" not in summary_path:
        os.makedirs(os.path.dirname(os.path.abspath(summary_path)), exist_ok=True)

    log.info("recount as_of=%s: %d archive files, table %s/%s/%s%s", as_of_s, len(files), project,
             shared.bigtable_instance, shared.bigtable_table, " (dry run)" if opts.report_only else "")
    p = beam.Pipeline(options=options)
    recount.build_recount(p, files=files, as_of=as_of, summary_path=summary_path, bigtable=bt,
                          write=not opts.report_only, list_limit=max(opts.list_limit, opts.worst_n),
                          post_buckets=opts.post_buckets)
    result = p.run()
    state = result.wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        return RecountOutcome(EXIT_FAILED, as_of, message=f"pipeline ended in state {state}")

    acc = drift.DriftAccumulator.from_json(json.loads(_read_text(summary_path)))
    extra = {
        "archive_files": len(files),
        "events_read": _metric(result, "post_events_valid", "hashtags"),
        "events_rejected": _metric(result, "post_events_rejected", "hashtags"),
        "events_before_as_of": _metric(result, "events_before_as_of"),
        "posts": _metric(result, "posts"),
        "posts_live": _metric(result, "posts_live"),
        "base_cells_written": 0 if opts.report_only else _metric(result, "base_cells"),
        "generated_at": dt.datetime.now(layout.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    report = drift.build_report(acc, as_of=as_of_s, table=shared.bigtable_table, dry_run=opts.report_only,
                                threshold=opts.drift_threshold, extra=extra)
    json_path, md_path = f"{report_root}/drift-{day}.json", f"{report_root}/drift-{day}.md"
    _write_text(json_path, drift.render_json(report))
    _write_text(md_path, drift.render_markdown(report, opts.worst_n))
    line = drift.summary_line(report)
    code = EXIT_DRIFT if report["exceeds_threshold"] else EXIT_OK
    (log.error if code else log.info)("%s", line)
    return RecountOutcome(code, as_of, report, [json_path, md_path], line)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    outcome = run_recount(sys.argv[1:] if argv is None else argv)
    if outcome.exit_code == EXIT_BAD_INPUT or outcome.exit_code == EXIT_FAILED:
        log.error("%s", outcome.message)
    for f in outcome.report_files:
        log.info("report: %s", f)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
