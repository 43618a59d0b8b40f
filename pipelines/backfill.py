"""Backfill CLI: run the reconciliation job in one of its modes, planned by ``hashtags.planning`` (the
same module the DAG plans with): each run is a typed ``hashtags.planning.JobConfig`` handed to the
job's launcher in-process (``pipelines.recount_launch.run``), the same path as the Flex Template's.

    python -m pipelines.backfill --archive A --nightly --as-of 2026-11-23 [--dry-run]
    python -m pipelines.backfill --archive A --nightly --as-of 2026-11-20 --through 2026-11-23
    python -m pipelines.backfill --archive A --reapply --from 2026-11-01 --to 2026-11-03 [--as-of D]
    python -m pipelines.backfill --archive A --full-rebuild --as-of 2026-11-23 [--dry-run]
    ... --project P --instance I --table T [--post-state-table S] [--report-path R] [--drift-threshold X]
    ... -- --runner=DataflowRunner --region=… --temp_location=gs://…   (Beam options, passed through)

* ``--nightly``: one incremental run for the midnight ``--as-of`` (default: today, UTC): it applies
  the arrival days since the last successful run before that midnight (the job reads its run record).
  With ``--through D``, one run per midnight from ``--as-of`` to D, in order (a progress bar).
* ``--reapply --from D1 --to D2``: re-apply the ARRIVAL days D1..D2 (``arrived=`` folders), e.g. a
  partition restored or completed late, as of ``--as-of`` (default today). ``--from``/``--to`` alone
  mean ``--reapply``.
* ``--full-rebuild``: every count and post state from the whole archive, as of ``--as-of``.
* ``--dry-run``: plan, run and report drift, write nothing (no table is created, no run recorded).

Against the emulator (BIGTABLE_EMULATOR_HOST, a local run) missing tables (``hashtags``,
``post_state``) are created first; against Bigtable none is (terraform owns them). Before any run the CLI checks
that the planned arrival partitions have files (``--allow-missing-days`` to go on; the launcher's
check, ``recount_launch.missing_days``). Exit codes are the launcher's: 0 ok, 2 bad input (nothing
run), 3 drift over ``--drift-threshold`` (counts repaired; the alert), 1 failure. A failure or bad
input stops a sequence of runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from hashtags import archive, layout, planning, settings
from hashtags.planning import JobConfig
from pipelines import recount_launch
from pipelines.recount_launch import EXIT_BAD_INPUT, EXIT_DRIFT, EXIT_FAILED, EXIT_OK

log = logging.getLogger("pipelines.backfill")


def _day(text: str) -> dt.date:
    try:
        return planning.parse_day(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pipelines.backfill", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", required=True, help="Archive root (local path or gs://)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--nightly", dest="mode", action="store_const", const=planning.NIGHTLY,
                      help="One incremental run for the midnight --as-of")
    mode.add_argument("--reapply", dest="mode", action="store_const", const=planning.REAPPLY,
                      help="Re-apply the arrival days --from..--to")
    mode.add_argument("--full-rebuild", dest="mode", action="store_const", const=planning.FULL_REBUILD,
                      help="Rebuild everything from the whole archive")
    ap.add_argument("--as-of", type=_day, help="Midnight (UTC date) the run writes (default: today UTC)")
    ap.add_argument("--through", type=_day, help="--nightly only: run every midnight from --as-of to this one")
    ap.add_argument("--from", dest="from_day", type=_day, help="First arrival day (YYYY-MM-DD)")
    ap.add_argument("--to", dest="to_day", type=_day, help="Last arrival day (YYYY-MM-DD), inclusive")
    ap.add_argument("--dry-run", action="store_true", help="Report only: write nothing")
    ap.add_argument("--allow-missing-days", action="store_true", help="Do not stop on arrival days without files")
    ap.add_argument("--project", default=settings.LOCAL_PROJECT)
    ap.add_argument("--instance", default=settings.LOCAL_INSTANCE)
    ap.add_argument("--table", default=settings.TABLE)
    ap.add_argument("--post-state-table", default=settings.POST_STATE_TABLE)
    ap.add_argument("--report-path", default="artifacts/drift")
    ap.add_argument("--drift-threshold", type=float, default=None)
    ap.add_argument("--no-progress", action="store_true", help="No progress bar (e.g. in CI logs)")
    return ap


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Own flags, and the Beam options after ``--``."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def plans(args: argparse.Namespace, today: dt.date) -> list[planning.RunPlan]:
    """Pure: the runs a command line asks for, in order. Raises ValueError."""
    mode = args.mode or (planning.REAPPLY if (args.from_day or args.to_day) else None)
    if mode is None:
        raise ValueError("give --nightly, --reapply --from/--to or --full-rebuild")
    if args.through and mode != planning.NIGHTLY:
        raise ValueError("--through goes with --nightly only")
    first = args.as_of or today
    last = args.through or first
    if last < first:
        raise ValueError(f"--through {last} is before --as-of {first}")
    return [planning.plan_run(mode, run_day=today, as_of=first + i * planning.ONE_DAY, from_day=args.from_day,
                              to_day=args.to_day, dry_run=args.dry_run)
            for i in range((last - first).days + 1)]


def job_config(plan: planning.RunPlan, args: argparse.Namespace) -> JobConfig:
    """The job's typed request for one plan (a nightly's range is narrowed by the job from its run
    record; local runs create their missing tables)."""
    return JobConfig(plan, args.archive, args.report_path, args.instance, args.table, args.post_state_table,
                     project=args.project, drift_threshold=args.drift_threshold,
                     allow_empty_archive=args.allow_missing_days)


def main(argv: list[str] | None = None, *, today: dt.date | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    own, beam_args = split_argv(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(own)
    except SystemExit as e:  # argparse has printed the usage
        return EXIT_BAD_INPUT if e.code else EXIT_OK
    try:
        runs = plans(args, today or dt.datetime.now(layout.UTC).date())
    except ValueError as e:
        log.error("%s", e)
        return EXIT_BAD_INPUT
    needed = sorted({d for p in runs for d in planning.required_days(p)})
    missing = recount_launch.missing_days(args.archive, needed) if needed else []
    if missing and not args.allow_missing_days:
        log.error("arrival days without archive files under %s: %s (--allow-missing-days to go on)",
                  args.archive, ", ".join(archive.partition_name(d) for d in missing))
        return EXIT_BAD_INPUT
    for p in runs:
        log.info("%s%s", p.describe(), " (arrival range from the last run record)" if p.mode == planning.NIGHTLY else "")
    return run_all(runs, args, beam_args)


def run_all(runs: list[planning.RunPlan], args: argparse.Namespace, beam_args: list[str]) -> int:
    from tqdm import tqdm

    drifted = False
    bar = tqdm(runs, unit="run", desc=runs[0].mode, disable=args.no_progress or len(runs) == 1, file=sys.stderr)
    for p in bar:
        bar.set_postfix_str(f"as_of {p.as_of.isoformat()}")
        out = recount_launch.run(job_config(p, args), beam_args)
        bar.write(out.message if out.report else f"as_of {p.as_of.isoformat()}: {out.message}")
        for f in out.report_files:
            log.info("report: %s", f)
        if out.exit_code in (EXIT_FAILED, EXIT_BAD_INPUT):
            bar.close()
            return out.exit_code
        drifted |= out.exit_code == EXIT_DRIFT
    bar.close()
    return EXIT_DRIFT if drifted else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
