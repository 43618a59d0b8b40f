"""Backfill / full rebuild: the recount job over a range of days, with a dry-run mode and progress.

    python -m pipelines.backfill --archive .run/archive --from 2026-11-01 --to 2026-11-22 [--dry-run]
    python -m pipelines.backfill --archive .run/archive --full-rebuild [--dry-run]
    python -m pipelines.backfill ... -- --direct_num_workers=2 --direct_running_mode=multi_processing

What a range means (and why it is ONE job by default). ``counts:base`` at a midnight is the exact
count of ALL archived history before it, and a page's total reads only the LATEST base (+ hour cells
after it). So re-counting "the days from..to" is one recount as of the midnight after ``--to``: it
re-reads every archived day up to ``--to`` (including the range) and writes one base version.
``--from`` marks the days that must be in the archive (a missing day fails the backfill before
anything is written, unless ``--allow-missing-days``). ``--each-day`` instead recounts as of every
midnight after a day of the range, in order (one job each, each a full recount of the history
before it): it rewrites the base versions those nights would have written and gives one drift
report per night — only useful to audit; the last one is what pages read. The hour cells are
never touched: they belong to the streaming job, and those before the new base are not read.

``--full-rebuild``: the table is created if it is missing (same families/GC rules as the local
stack), then every tag is recounted from the whole archive as of today's midnight UTC (or the
midnight after ``--to``); tags in the table with no archived post get 0. Today's events since
midnight are counted by the streaming job's hour cells (not rebuilt here).

``--dry-run``: plan, recount and report drift, write nothing. Exit code: the worst of the runs
(0 ok, 2 bad input, 3 drift over ``--drift-threshold``, 1 failure).
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from dataclasses import dataclass

from hashtags import layout, settings

log = logging.getLogger("pipelines.backfill")


@dataclass(frozen=True)
class Plan:
    as_ofs: list[dt.date]  # midnights (as dates) to recount as of, in order
    required_days: list[dt.date]  # archive partitions that must exist
    mode: str


def plan(*, from_day: dt.date | None, to_day: dt.date | None, full_rebuild: bool, each_day: bool,
         today: dt.date) -> Plan:
    """Pure: which recounts a backfill runs."""
    if full_rebuild:
        as_of = (to_day + dt.timedelta(days=1)) if to_day else today
        if as_of > today:
            raise ValueError(f"--to {to_day} is not a complete day yet (today is {today} UTC)")
        return Plan([as_of], [], "full_rebuild")
    if from_day is None and to_day is None:
        raise ValueError("give --from/--to (days of events) or --full-rebuild")
    from_day, to_day = from_day or to_day, to_day or from_day
    if from_day > to_day:
        raise ValueError(f"--from {from_day} is after --to {to_day}")
    if to_day >= today:
        raise ValueError(f"--to {to_day} is not a complete day yet (today is {today} UTC)")
    days = [from_day + dt.timedelta(days=i) for i in range((to_day - from_day).days + 1)]
    as_ofs = [d + dt.timedelta(days=1) for d in days] if each_day else [to_day + dt.timedelta(days=1)]
    return Plan(as_ofs, days, "each_day" if each_day else "range")


def _day(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {s!r}")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1:]
    else:
        beam_args = []
    ap = argparse.ArgumentParser(prog="python -m pipelines.backfill", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", required=True, help="Archive root (local path or gs://)")
    ap.add_argument("--from", dest="from_day", type=_day, help="First day of events (YYYY-MM-DD)")
    ap.add_argument("--to", dest="to_day", type=_day, help="Last day of events (YYYY-MM-DD), inclusive")
    ap.add_argument("--full-rebuild", action="store_true", help="Create the table if missing and recount everything")
    ap.add_argument("--each-day", action="store_true", help="One recount per midnight of the range (audit)")
    ap.add_argument("--dry-run", action="store_true", help="Report only: write nothing")
    ap.add_argument("--allow-missing-days", action="store_true", help="Do not fail on missing archive days")
    ap.add_argument("--project", default=settings.LOCAL_PROJECT)
    ap.add_argument("--instance", default=settings.LOCAL_INSTANCE)
    ap.add_argument("--table", default=settings.TABLE)
    ap.add_argument("--report-path", default="artifacts/drift")
    ap.add_argument("--drift-threshold", type=float, default=None)
    ap.add_argument("--no-progress", action="store_true", help="No progress bar (e.g. in CI logs)")
    return ap.parse_args(argv), beam_args


def main(argv: list[str] | None = None, *, today: dt.date | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    args, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    today = today or dt.datetime.now(layout.UTC).date()
    try:
        p = plan(from_day=args.from_day, to_day=args.to_day, full_rebuild=args.full_rebuild,
                 each_day=args.each_day, today=today)
    except ValueError as e:
        log.error("%s", e)
        return 2

    from tqdm import tqdm

    from pipelines import recount, recount_main

    listing = recount.list_archive(args.archive)
    days = recount.archive_days(args.archive)
    missing = [d for d in p.required_days if d not in days]
    if p.mode == "full_rebuild" and not listing:
        log.error("no archive files under %s: nothing to rebuild from", args.archive)
        return 2
    if missing and not args.allow_missing_days:
        log.error("archive days missing under %s: %s (use --allow-missing-days to go on)", args.archive,
                  ", ".join(d.isoformat() for d in missing))
        return 2
    last = max(p.as_ofs)
    n_files = sum(n for d, (n, _) in days.items() if d < last)
    n_bytes = sum(b for d, (_, b) in days.items() if d < last)
    log.info("%s%s: %d recount(s) as of %s; archive before %s: %d files, %.1f MB",
             p.mode, " (dry run)" if args.dry_run else "", len(p.as_ofs),
             ", ".join(d.isoformat() for d in p.as_ofs), last.isoformat(), n_files, n_bytes / 1e6)

    if p.mode == "full_rebuild" and not args.dry_run:
        from hashtag_store import create_table

        create_table(args.project, args.instance, args.table)  # idempotent

    worst = 0
    bar = tqdm(p.as_ofs, unit="recount", desc=p.mode, disable=args.no_progress, file=sys.stderr)
    for as_of in bar:
        bar.set_postfix_str(f"as_of {as_of.isoformat()}")
        argv_run = [f"--archive_path={args.archive}", f"--as_of={as_of.isoformat()}",
                    f"--project={args.project}", f"--bigtable_instance={args.instance}",
                    f"--bigtable_table={args.table}", f"--report_path={args.report_path}", *beam_args]
        if args.dry_run:
            argv_run.append("--report_only")
        if args.drift_threshold is not None:
            argv_run.append(f"--drift_threshold={args.drift_threshold}")
        files = recount.files_before((f for f, _ in listing), layout.midnight_utc(as_of))
        out = recount_main.run_recount(argv_run, files=files if files else None)
        if out.report:
            bar.write(out.message)
            bar.set_postfix_str(f"as_of {as_of.isoformat()} drifted {out.report['tags_drifted']}")
        else:
            bar.write(f"as_of {as_of.isoformat()}: {out.message}")
        worst = max(worst, out.exit_code)
        if out.exit_code in (recount_main.EXIT_FAILED, recount_main.EXIT_BAD_INPUT):
            break
    bar.close()
    for f in (out.report_files if out.report else []):
        log.info("last report: %s", f)
    return worst


if __name__ == "__main__":
    sys.exit(main())
