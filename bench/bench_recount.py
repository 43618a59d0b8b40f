"""Recount throughput: events/s of the recount job (FnApiRunner) over a synthetic archive, beside a
plain-Python baseline (parse + latest-per-post + distinct tags + count, one process) over the SAME
files, in the same run. The job run includes the table snapshot and the base writes to a Bigtable
emulator started here (skipped with --no-table).

    .venv/bin/python bench/bench_recount.py --events 1000000            # ~ a few minutes
    .venv/bin/python bench/bench_recount.py --events 1000000 --direct_num_workers 2

Prints one JSON line with the figures (and the markdown row used in docs/BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hashtags.messages import PostEvent, parse_post_event  # noqa: E402

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 23, tzinfo=UTC)


def generate(root: Path, events: int, days: int = 10, files_per_day: int = 4, seed: int = 1) -> int:
    """~87 % publishes, ~8 % deletes of earlier posts, ~5 % duplicated deliveries; 5,000 tags (Zipf-ish)."""
    rnd = random.Random(seed)
    vocab = [f"tag{i}" for i in range(5000)]
    cum, acc = [], 0.0
    for i in range(len(vocab)):
        acc += 1 / (i + 1)
        cum.append(acc)
    start = AS_OF - dt.timedelta(days=days)
    span = days * 86400
    per_day: dict[str, list[list[str]]] = collections.defaultdict(lambda: [[] for _ in range(files_per_day)])
    published: list[dict] = []
    n = 0
    post = 0
    while n < events:
        r = rnd.random()
        if r < 0.05 and published:
            d = rnd.choice(published)  # duplicate delivery (identical line)
        elif r < 0.13 and published:
            p = rnd.choice(published)
            t = dt.datetime.fromisoformat(p["event_time"].replace("Z", "+00:00")) + dt.timedelta(minutes=5)
            d = dict(p, event="deleted", event_time=t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     event_id=p["event_id"] + "-d")
        else:
            post += 1
            t = start + dt.timedelta(seconds=rnd.randrange(span))
            tags = rnd.choices(vocab, cum_weights=cum, k=rnd.randint(1, 4))
            d = {"event": "published", "post_id": f"p{post}", "user_id": f"u{post % 9973}",
                 "caption": "photo " + " ".join("#" + x.upper() if rnd.random() < .1 else "#" + x for x in tags),
                 "image_url": f"https://img.example/{post}.jpg", "event_time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "event_id": f"e{post}"}
            published.append(d)
        line = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
        per_day[d["event_time"][:10]][rnd.randrange(files_per_day)].append(line)
        n += 1
    for day, files in per_day.items():
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, lines in enumerate(files):
            (folder / f"events-{i:03d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n


def baseline(files: list[str], as_of: dt.datetime) -> tuple[dict[str, int], int]:
    """Plain Python, one process: the same semantics as the job, without Beam."""
    latest: dict[str, tuple] = {}
    n = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if not line:
                    continue
                n += 1
                e = parse_post_event(line)
                if not isinstance(e, PostEvent) or e.event_time >= as_of:
                    continue
                k = (e.event_time, e.event == "deleted", e.event_id or "", line)
                cur = latest.get(e.post_id)
                if cur is None or k > cur[0]:
                    latest[e.post_id] = (k, e)
    counts: collections.Counter = collections.Counter()
    for _, e in latest.values():
        if e.event == "published":
            for key, _ in e.tags():
                counts[key] += 1
    return dict(counts), n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--archive", default=None, help="Reuse/generate the archive here (default: a temp dir)")
    ap.add_argument("--no-table", action="store_true", help="Dry run: snapshot an empty table, write no base cells")
    ap.add_argument("--direct_num_workers", type=int, default=0)
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]  # the machine is shared: record the load with the figures
    root = Path(args.archive or tempfile.mkdtemp(prefix="recount-bench-"))
    if not any(root.glob("dt=*/*.jsonl")):
        t0 = time.perf_counter()
        n = generate(root, args.events)
        print(f"generated {n} events under {root} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    from pipelines import recount, recount_main

    files = recount.files_before((p for p, _ in recount.list_archive(str(root))), AS_OF)
    size = sum(os.path.getsize(f) for f in files)

    base_rate = None
    if not args.skip_baseline:
        t0 = time.perf_counter()
        ref, n_lines = baseline(files, AS_OF)
        base_s = time.perf_counter() - t0
        base_rate = n_lines / base_s
        print(f"baseline: {n_lines} events in {base_s:.1f}s = {base_rate:,.0f} events/s", file=sys.stderr)

    em = None
    argv = ["--as_of=2026-11-23", f"--report_path={root.parent / (root.name + '-reports')}",
            "--project=bench-project", "--bigtable_instance=bench", "--bigtable_table=hashtags"]
    if args.direct_num_workers:
        argv += [f"--direct_num_workers={args.direct_num_workers}", "--direct_running_mode=multi_processing"]
    try:
        from devstack import emulators
        from hashtag_store import create_table

        # The snapshot always reads a table (an empty one here); --no-table only skips the writes.
        em = emulators.start_bigtable()
        os.environ["BIGTABLE_EMULATOR_HOST"] = em.address
        create_table("bench-project", "bench", "hashtags")
        if args.no_table:
            argv.append("--report_only")
        t0 = time.perf_counter()
        out = recount_main.run_recount(argv + [f"--archive_path={root}"], files=files)
        job_s = time.perf_counter() - t0
    finally:
        if em:
            em.stop()
    assert out.exit_code == 0, out.message
    n_read = out.report["events_read"]
    job_rate = n_read / job_s
    result = {
        "events": n_read, "files": len(files), "bytes": size, "tags": out.report["tags"],
        "job_seconds": round(job_s, 1), "job_events_per_s": round(job_rate),
        "baseline_events_per_s": round(base_rate) if base_rate else None,
        "direct_num_workers": args.direct_num_workers or 1, "table": not args.no_table,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if not args.skip_baseline:
        assert out.report["total_after"] == sum(ref.values()), "job and baseline disagree"
        result["matches_baseline"] = True
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
