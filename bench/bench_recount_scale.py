"""The nightly reconciliation as the night grows 10x, on a table that already holds many older tags.

One invocation, against a Bigtable emulator started here:

* table ``old``: ``--old-tags`` older tag rows (a base at the last recorded run, never touched by
  the nights), then three nights of ``--sizes`` events each (Zipf over ``--vocab`` tags, 1-3 tags a
  post, ~5 % redeliveries and ~3 % deletes), each a ``nightly`` run after the previous one;
* table ``bare``: the largest night again, alone on a table without the older tags (same events).

Each run is a separate process (``--one``: ``recount_launch.run`` on FnApiRunner, in
process), so its peak RSS is the job's own. Reported per run: seconds, µs per event, peak RSS,
tags the night touched, rows read from ``hashtags`` (the report's ``table_rows``). Markdown to
docs/BENCHMARKS.md "Nightly at scale (issue 18)" unless ``--no-docs``.

    .venv/bin/python bench/bench_recount_scale.py                         # 20k / 100k / 200k events, 1M older tags
    .venv/bin/python bench/bench_recount_scale.py --sizes 200000,1000000,2000000   # the issue's sizes (hours here)

Not a test: the figures depend on the shared machine; the load average is recorded.
"""
from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UTC = dt.timezone.utc
START = dt.date(2031, 1, 1)  # far from the wall clock: GC never ages out the cells
PROJECT, INSTANCE = "bench-project", "bench"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
SECTION = "## Nightly at scale (issue 18)"

from bench_recount import write_partition  # noqa: E402 (bench/ is sys.path[0]: the 30-night bench's archive layout)


def night_lines(seed: int, events: int, vocab: int, day: dt.date, prefix: str) -> list[str]:
    """One night's arrivals (deterministic for a seed): Zipf(1) over ``vocab`` tags."""
    rnd = random.Random(seed)
    cum = list(itertools.accumulate(1 / (i + 1) for i in range(vocab)))
    total = cum[-1]
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    out, posts = [], []
    for n in range(events):
        r = rnd.random()
        if r < 0.05 and out:
            out.append(rnd.choice(out))
            continue
        t = (midnight + dt.timedelta(seconds=rnd.uniform(0, 86399))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if r < 0.08 and posts:
            pid = rnd.choice(posts)
            d = {"event": "deleted", "post_id": pid, "user_id": "u", "caption": "", "event_time": t,
                 "event_id": f"{prefix}d{n}"}
        else:
            tags = {f"t{bisect.bisect_left(cum, rnd.random() * total)}" for _ in range(rnd.randint(1, 3))}
            pid = f"{prefix}p{n}"
            posts.append(pid)
            d = {"event": "published", "post_id": pid, "user_id": f"u{n % 50_000}",
                 "caption": "photo " + " ".join("#" + x for x in sorted(tags)),
                 "image_url": f"https://img.example/{n}.jpg", "event_time": t, "event_id": f"{prefix}e{n}"}
        out.append(json.dumps(d, separators=(",", ":")))
    return out


def seed_old_tags(table: str, n: int, as_of: dt.date) -> float:
    """``n`` rows ``old<i>`` with a base at ``as_of`` (a recorded run's midnight). Returns seconds."""
    from google.cloud.bigtable.row import DirectRow

    from hashtag_store import BigtableStore
    from hashtags import layout

    t0 = time.perf_counter()
    ts = layout.midnight_utc(as_of)
    s = BigtableStore(PROJECT, INSTANCE, table)
    try:
        for start in range(0, n, 20_000):
            rows = []
            for i in range(start, min(n, start + 20_000)):
                row = DirectRow(f"old{i:07d}".encode())
                row.set_cell(layout.FAMILY_COUNTS, layout.COL_BASE, layout.encode_count(1 + i % 97), timestamp=ts)
                rows.append(row)
            s.mutate(rows, batch_size=5000)
    finally:
        s.close()
    return time.perf_counter() - t0


def record_run(table: str, as_of: dt.date) -> None:
    """A recorded nightly at ``as_of`` (the priors the next night reads)."""
    from hashtag_store import post_state as state_store
    from hashtags import planning
    from hashtags import post_state as ps

    state_store.write_run(PROJECT, INSTANCE, f"{table}-state", ps.RunRecord(
        as_of, planning.NIGHTLY, as_of - dt.timedelta(days=1), as_of - dt.timedelta(days=1), dt.datetime.now(UTC)))


def one(args) -> int:
    """One run in this process; prints its JSON line (with this process's peak RSS)."""
    from hashtags import planning
    from pipelines import recount_launch

    t0 = time.perf_counter()
    out = recount_launch.run(planning.JobConfig(
        planning.plan_nightly(planning.parse_day(args.as_of), None), str(args.archive), str(args.reports), INSTANCE,
        args.table, f"{args.table}-state", project=PROJECT))
    seconds = time.perf_counter() - t0
    assert out.exit_code == 0, out.message
    r = out.report
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                      "peak_rss_mb": round(usage.ru_maxrss / 1024), **{k: r[k] for k in (
            "events_read", "posts", "posts_changed", "tags_touched", "table_rows", "base_cells_written",
            "related_cells_written", "mode", "arrived_from", "arrived_to")}}), flush=True)
    return 0


def run_one(work: Path, table: str, archive: Path, as_of: dt.date) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--one", "--table", table, "--archive", str(archive),
                           "--as-of", as_of.isoformat(), "--reports", str(work / "reports" / table)],
                          capture_output=True, text=True, env=os.environ)
    if proc.returncode:
        raise SystemExit(f"run failed: {proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(table=table, as_of=as_of.isoformat(), load_1m_before_after=[round(load, 2), round(os.getloadavg()[0], 2)])
    row["us_per_event"] = round(row["seconds"] * 1e6 / max(row["events_read"], 1), 1)
    if "cpu_seconds" in row:  # the job process's own CPU (the emulator's is not counted)
        row["cpu_us_per_event"] = round(row["cpu_seconds"] * 1e6 / max(row["events_read"], 1), 1)
    print(json.dumps(row), flush=True)
    return row


def markdown(args, rows: list[dict], seeded: float, uptimes: tuple[str, str], started: str, finished: str) -> str:
    import apache_beam

    head = ("| table | night (events) | wall s | wall µs / event | CPU s | CPU µs / event | peak RSS (MB) | "
            "tags touched | rows read | bases written | related cells | load 1m before → after |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['table']} | {r['events_read']:,} | {r['seconds']} | {r['us_per_event']} | {r.get('cpu_seconds', '–')} | "
        f"{r.get('cpu_us_per_event', '–')} | {r['peak_rss_mb']} | "
        f"{r['tags_touched']:,} | {r['table_rows']:,} | {r['base_cells_written']:,} | {r['related_cells_written']:,} | "
        f"{r['load_1m_before_after'][0]} → {r['load_1m_before_after'][1]} |\n" for r in rows)
    old = [r for r in rows if r["table"] == "old"]
    bare = next(r for r in rows if r["table"] == "bare")
    same = next(r for r in old if r["events_read"] == bare["events_read"])
    ratio = lambda a, b: f"{a / b:.2f}x"  # noqa: E731
    return f"""{SECTION}

Command: `.venv/bin/python bench/bench_recount_scale.py --sizes {args.sizes} --old-tags {args.old_tags} --vocab {args.vocab}`
({started} → {finished} UTC, Beam {apache_beam.__version__}, FnApiRunner in one process per run, the
Bigtable emulator; {os.cpu_count()} cores SHARED with four other agents' tests: figures are noisy).
`uptime` before: `{uptimes[0]}`; after: `{uptimes[1]}`.
Table `old` held {args.old_tags:,} older tag rows (seeded in {seeded:.0f} s) before its first night;
each night reads only its own arrival day (a separate archive root), Zipf(1) over {args.vocab:,} tags.

{head}{body}
* Night grown {ratio(old[-1]['events_read'], old[0]['events_read'])}: wall time per event
  {ratio(old[-1]['us_per_event'], old[0]['us_per_event'])}, CPU per event
  {ratio(old[-1].get('cpu_us_per_event', 1), old[0].get('cpu_us_per_event', 1))}, peak RSS {ratio(old[-1]['peak_rss_mb'], old[0]['peak_rss_mb'])}
  (largest vs smallest night).
* Same night ({bare['events_read']:,} events) with vs without the {args.old_tags:,} older tags:
  {ratio(same['seconds'], bare['seconds'])} the time.
* Rows read from `hashtags` / tags touched: {', '.join(f"{r['table_rows'] / max(r['tags_touched'], 1):.2f}" for r in rows)}.
"""


def write_docs(section: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section.rstrip("\n") + ("\n" + text[end:] if end != -1 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20000,100000,200000", help="Events of the three nights")
    ap.add_argument("--old-tags", type=int, default=1_000_000)
    ap.add_argument("--vocab", type=int, default=500_000)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--table"), ap.add_argument("--archive"), ap.add_argument("--as-of"), ap.add_argument("--reports")
    args = ap.parse_args()
    if args.one:
        return one(args)
    from devstack import emulators
    from hashtag_store import create_table
    from hashtag_store.bigtable import create_post_state_table

    sizes = [int(x) for x in args.sizes.split(",")]
    started = dt.datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    up_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="recount-scale-"))
    em = emulators.start_bigtable()
    os.environ["BIGTABLE_EMULATOR_HOST"] = em.address
    rows = []
    try:
        for table in ("old", "bare"):
            create_table(PROJECT, INSTANCE, table)
            create_post_state_table(PROJECT, INSTANCE, f"{table}-state")
        seeded = seed_old_tags("old", args.old_tags, START)
        record_run("old", START)
        print(json.dumps({"seeded_old_tags": args.old_tags, "seconds": round(seeded, 1)}), flush=True)
        for k, size in enumerate(sizes):
            day = START + dt.timedelta(days=k)
            archive = work / f"archive{k}"
            write_partition(archive, day, night_lines(k, size, args.vocab, day, f"n{k}"))
            rows.append(run_one(work, "old", archive, day + dt.timedelta(days=1)))
        k = len(sizes) - 1
        day = START + dt.timedelta(days=k)
        record_run("bare", day)  # the same night, on a table with nothing older
        rows.append(run_one(work, "bare", work / f"archive{k}", day + dt.timedelta(days=1)))
    finally:
        em.stop()
        shutil.rmtree(work, ignore_errors=True)
    finished = dt.datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    up_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    section = markdown(args, rows, seeded, (up_before, up_after), started, finished)
    print(section)
    if not args.no_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
