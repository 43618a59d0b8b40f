"""Page v2 (issue 11) serving cost: bench/bench_http.py with every tag's row carrying the new
content, written into the "## Page v2 (issue 11)" section of docs/BENCHMARKS.md.

    .venv/bin/python bench/bench_page_v2.py --variant before=git:REV --variant after=. [--rounds 2]
        [any other bench_http.py option]

Same servers, scenarios and CPU accounting as bench_http.py (it runs that script's ``main``); two
things differ:
- the rows: besides the 100 top posts, every tag gets what the page v2 shows — 30 hour cells up to
  the current hour (the 24-hour sparkline and the last 7 days), a base count at the last midnight,
  7 ``days`` cells with accounts (the nightly job's), 10 related tags at the last midnight;
- the section: the issue-12 targets of bench_http's report are replaced by issue 11's (server CPU
  per request within 10 % of 174 µs hot / 798 µs uncached, the figures of the last quiet run), and
  the variant ratio of the server CPU per request is given per scenario.
"""
from __future__ import annotations

import datetime as dt
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_http  # noqa: E402

from hashtag_store import mutations  # noqa: E402
from hashtags.layout import DayCounts, RelatedTag, hour_start  # noqa: E402

SECTION = "## Page v2 (issue 11)"
REFERENCE_US = {"hot": 174, "uncached": 798}  # server CPU µs/request, issue 11's "last quiet run"
TOLERANCE = 0.10
_base_populate = bench_http.populate
_base_report = bench_http.report


def populate(store, n_tags: int, seed: int = 42) -> None:
    """bench_http's rows (top posts + one old hour count), then the page-v2 cells of every tag."""
    _base_populate(store, n_tags, seed)
    rng = random.Random(seed + 1)
    now = dt.datetime.now(dt.timezone.utc)
    current = hour_start(now)
    midnight = dt.datetime.combine(now.date(), dt.time(), dt.timezone.utc)
    rows = []
    for i in range(n_tags):
        key = bench_http.tag_name(i)
        for h in range(30):
            rows.append(mutations.hour_count_row(key, current - dt.timedelta(hours=h), rng.randrange(0, 500),
                                                key.capitalize(), generation=0))
        rows.append(mutations.base_count_row(key, midnight, rng.randrange(1, 5_000_000)))
        days = {now.date() - dt.timedelta(days=b): DayCounts(rng.randrange(0, 5000), rng.randrange(0, 900))
                for b in range(1, 8)}
        rows.append(mutations.day_cells_row(key, midnight, days))
        rows.append(mutations.related_row(key, midnight, [
            RelatedTag(bench_http.tag_name((i + k) % n_tags), 1000 - k) for k in range(1, 11)]))
    store.mutate(rows, batch_size=500)
    print(f"page v2 content: {len(rows)} more row mutations", flush=True)


def report(run, args, html, gz, load, load_after) -> str:
    text = _base_report(run, args, html, gz, load, load_after)
    head, sep, _targets = text.partition("| target (issue 12")  # issue 12's verdicts do not apply here
    text = (head if sep else text).rstrip() + "\n"
    text = text.replace("+ an hour count each.", "+ the page v2 content each (30 hour cells, a base, 7 days "
                        "cells with accounts, 10 related tags: bench/bench_page_v2.py).")
    text = text.replace("by `bench/bench_http.py` (reproduce: `.venv/bin/python bench/bench_http.py",
                        "by `bench/bench_page_v2.py` (bench_http.py's main; reproduce: "
                        "`.venv/bin/python bench/bench_page_v2.py")
    text = text.replace("Page size for 100 posts:", f"Page size for 100 posts (variant {run.variants[0].label}, the "
                        "page nginx serves):")
    labels = [v.label for v in run.variants]
    lines = ["", "| scenario | variant | server CPU µs/req per round | vs issue 11's reference | within 10 % |",
             "|---|---|---|---:|---|"]
    for sc, ref in REFERENCE_US.items():
        for label in labels:
            us = [r[sc][label]["cpu_us"]["server"] for r in run.results]
            worst = max(us)
            lines.append(f"| {sc} | {label} | {', '.join(f'{u:,.0f}' for u in us)} | {worst / ref:.2f} × {ref} µs "
                         f"| {'yes' if worst <= ref * (1 + TOLERANCE) else '**no**'} |")
    if len(labels) > 1:
        lines += ["", f"Server CPU per request, {labels[-1]} / {labels[0]} (same run, same rows):", ""]
        for sc in ("hot", "uncached", "unknown"):
            ratios = [r[sc][labels[-1]]["cpu_us"]["server"] / r[sc][labels[0]]["cpu_us"]["server"] for r in run.results]
            lines.append(f"- {sc}: " + ", ".join(f"{x:.2f} ×" for x in ratios))
    return text + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    bench_http.populate = populate
    bench_http.report = report
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--section" not in argv:
        argv += ["--section", SECTION]
    if "--notes" not in argv:
        argv += ["--notes", str(Path(__file__).with_name("bench_page_v2_notes.md"))]
    bench_http.main(argv)


if __name__ == "__main__":
    main()
