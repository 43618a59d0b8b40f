"""The count transform: (a) throughput on one core, (b) Bigtable mutations per 1,000 post events.

    .venv/bin/python bench/bench_counts.py                      # both parts, prints a markdown section
    .venv/bin/python bench/bench_counts.py --write-docs docs/BENCHMARKS.md   # ... and replaces its section

(a) Events/s through the shared ``ParsePostEvents`` + ``CountTags`` (pipelines/transforms.py) on the
FnApiRunner, batch, ``--direct_num_workers=1`` (in-process), the whole process pinned to ONE core
(``taskset -c <cpu>``: the script re-executes itself under taskset, so every thread Beam starts
inherits the pinning), over N post events from ``devstack.loadgen.generate`` (their ``.data`` bytes:
Zipf tags, 1-10 per caption, mixed scripts, ~5 % deletes, ~2 % malformed). Beside it, in the same
process and interleaved pass by pass: a plain-Python baseline (the same ``parse_post_event``, distinct
tags per post, a ``Counter`` of ±1) and the floor of the runner itself (the same read into a no-op
``Map`` and a global sum). All three read the events from one JSON-lines file. Beam and the baseline
must produce the same per-tag totals (checked).

(b) The REAL streaming windowing (``WindowedTagCounts`` with its production defaults: FixedWindows 1 h,
early AfterProcessingTime(60 s), accumulating, 6 h allowed lateness; late panes on AfterCount(1), see
``mutations``) + ``HourCountRow`` under a ``TestStream`` on the BundleBasedDirectRunner. Events arrive in
arrival-time order (event time + a delay: most seconds to minutes, 1 % 20-90 minutes late), 1,000 per
element batch; after each batch processing time advances 61 s (so early panes fire: one firing per
1,000 events) and the watermark follows arrival time minus 5 minutes (so on-time and late panes
fire too). Counts every DirectRow (one ``MutateRows`` entry) and cell (SetCell) produced, against the
naive per-event-per-tag write count and against the bound (distinct tags per window × firings).
The last pane of every (tag, hour) must equal the generator's exact count (checked).
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UTC = dt.timezone.utc
SECTION = "## Count transform"
NOW = dt.datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# machine / load
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> tuple[float, float, float]:
    return os.getloadavg()


def uptime_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return " / ".join(f"{x:.2f}" for x in load())


def machine() -> dict:
    import apache_beam

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "beam": apache_beam.__version__,
        "os": platform.platform(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "commit": _git_head(),
    }


def _git_head() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hashtags", "pipelines", "hashtag_store"],
                               cwd=ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
        return head + (" + uncommitted changes under hashtags/, pipelines/ or hashtag_store/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def pin_to_one_core(cpu: int) -> None:
    """Re-exec under ``taskset -c cpu`` unless already pinned there (threads inherit the mask)."""
    if os.sched_getaffinity(0) == {cpu}:
        return
    if os.environ.get("BENCH_COUNTS_PINNED") == "1":  # taskset ran but the mask did not stick
        os.sched_setaffinity(0, {cpu})
        return
    os.environ["BENCH_COUNTS_PINNED"] = "1"
    os.execvp("taskset", ["taskset", "-c", str(cpu), sys.executable, *sys.argv])


# ---------------------------------------------------------------------------------------------
# collecting outputs of an in-process runner (functions defined in __main__ are pickled by value,
# so the sink is looked up through sys.modules at run time, in this same process)
_SINKS: dict[str, list] = collections.defaultdict(list)


def _sink(name: str):
    mod = sys.modules[__name__]

    def collect(x):
        mod._SINKS[name].append(x)

    return collect


# ---------------------------------------------------------------------------------------------
# (a) throughput
def post_event_file(n: int, seed: int, folder: Path) -> tuple[Path, int, int]:
    """Write N generated post events (their .data bytes) as one JSON-lines file: (path, events, bytes).

    Both runs read this file, so neither pays to carry the events into the pipeline differently
    (``beam.Create`` would pickle and bz2-compress the whole list into the pipeline proto, several
    times: ~30 s for 200k events, none of it the count transform's cost)."""
    from devstack import loadgen

    path = folder / f"post-events-{n}-{seed}.jsonl"
    size = 0
    with open(path, "wb") as fh:
        for m in loadgen.generate(n, seed=seed, now=NOW, spread_minutes=180):
            assert b"\n" not in m.data, "a JSON payload holds no raw newline"
            fh.write(m.data + b"\n")
            size += len(m.data)
    return path, n, size


def read_lines(path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        for line in fh:
            yield line[:-1]


def baseline_counts(path: Path) -> dict[str, int]:
    """Plain Python: read, parse, distinct tags per post, ±1 into a Counter."""
    from hashtags.messages import PostEvent, parse_post_event

    counts: collections.Counter = collections.Counter()
    for data in read_lines(path):
        e = parse_post_event(data)
        if isinstance(e, PostEvent):
            d = e.delta
            for key, _ in e.tags():
                counts[key] += d
    return dict(counts)


def baseline_parse_only(path: Path) -> int:
    """Plain Python, the parse alone: how many valid post events."""
    from hashtags.messages import PostEvent, parse_post_event

    return sum(1 for data in read_lines(path) if isinstance(parse_post_event(data), PostEvent))


def _runner_pipeline():
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    opts = PipelineOptions(["--direct_num_workers=1", "--direct_running_mode=in_memory"])
    return beam.Pipeline(runner=FnApiRunner(), options=opts)


def beam_counts(path: Path, sink: str) -> dict[str, int]:
    import apache_beam as beam

    from pipelines.transforms import CountTags, ParsePostEvents

    _SINKS[sink] = []
    with _runner_pipeline() as p:
        (p | "File" >> beam.Create([str(path)]) | "Lines" >> beam.FlatMap(read_lines)
         | "Parse" >> ParsePostEvents()).events \
            | "Count" >> CountTags() \
            | "Collect" >> beam.Map(_sink(sink))
    return {k: t.count for k, t in _SINKS.pop(sink)}


def beam_parse_only(path: Path, sink: str) -> int:
    """The same pipeline without CountTags: read → ParsePostEvents → count of valid events."""
    import apache_beam as beam

    from pipelines.transforms import ParsePostEvents

    _SINKS[sink] = []
    with _runner_pipeline() as p:
        (p | "File" >> beam.Create([str(path)]) | "Lines" >> beam.FlatMap(read_lines)
         | "Parse" >> ParsePostEvents()).events \
            | "One" >> beam.Map(lambda _: 1) \
            | "Sum" >> beam.CombineGlobally(sum).without_defaults() \
            | "Collect" >> beam.Map(_sink(sink))
    return _SINKS.pop(sink)[0]


def beam_floor(path: Path, sink: str) -> int:
    """The runner's own cost for the same input: read the lines → no-op Map → one global sum."""
    import apache_beam as beam

    _SINKS[sink] = []
    with _runner_pipeline() as p:
        (p | "File" >> beam.Create([str(path)]) | "Lines" >> beam.FlatMap(read_lines)
         | "Len" >> beam.Map(len)
         | "Sum" >> beam.CombineGlobally(sum).without_defaults()
         | "Collect" >> beam.Map(_sink(sink)))
    return _SINKS.pop(sink)[0]


def throughput(n: int, passes: int, seed: int, folder: Path) -> dict:
    t0 = time.perf_counter()
    path, n, size = post_event_file(n, seed, folder)
    gen_s = time.perf_counter() - t0
    names = ("baseline", "beam", "baseline_parse", "beam_parse", "floor")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    reference = valid = None
    for i in range(passes):
        for name in names:  # interleaved: load from others hits every row alike
            w0, c0 = time.perf_counter(), time.process_time()
            if name == "baseline":
                out = baseline_counts(path)
            elif name == "beam":
                out = beam_counts(path, f"beam{i}")
            elif name == "baseline_parse":
                out = baseline_parse_only(path)
            elif name == "beam_parse":
                out = beam_parse_only(path, f"parse{i}")
            else:
                out = beam_floor(path, f"floor{i}")
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            runs[name].append((wall, cpu))
            if name == "baseline":
                reference = out
            elif name == "beam":
                assert out == reference, "Beam and baseline counts differ"
            elif name == "baseline_parse":
                valid = out
            elif name == "beam_parse":
                assert out == valid, "Beam and baseline parse differ"
            else:
                assert out == size
            print(f"  pass {i + 1} {name:14s} {wall:6.1f} s wall {cpu:6.1f} s cpu = {n / wall:,.0f} events/s",
                  file=sys.stderr)
    res = {"events": n, "valid_events": valid, "bytes": size, "tags": len(reference), "passes": passes,
           "generate_seconds": round(gen_s, 1)}
    for name, rs in runs.items():
        walls = [w for w, _ in rs]
        cpus = [c for _, c in rs]
        res[name] = {"best_wall_s": round(min(walls), 2), "median_wall_s": round(statistics.median(walls), 2),
                     "best_eps": round(n / min(walls)), "median_eps": round(n / statistics.median(walls)),
                     "cpu_eps": round(n / statistics.median(cpus))}
    res["ratio_median"] = round(res["beam"]["median_eps"] / res["baseline"]["median_eps"], 3)
    res["ratio_best"] = round(res["beam"]["best_eps"] / res["baseline"]["best_eps"], 3)
    res["ratio_cpu"] = round(res["beam"]["cpu_eps"] / res["baseline"]["cpu_eps"], 3)
    return res


_PARSE_COST = """
import datetime as dt, inspect, sys, time
sys.path.insert(0, sys.argv[1])
from devstack import loadgen
from hashtags.messages import parse_post_event
msgs = [m.data for m in loadgen.generate(int(sys.argv[2]), seed=int(sys.argv[3]),
        now=dt.datetime(2026, 11, 23, 13, tzinfo=dt.timezone.utc), spread_minutes=180)]
clock = "now" in inspect.signature(parse_post_event).parameters  # what ParsePostEventsFn passes
best = float("inf")
for _ in range(5):
    t0 = time.process_time()
    if clock:
        for d in msgs:
            parse_post_event(d, None, now=dt.datetime.now(dt.timezone.utc))
    else:
        for d in msgs:
            parse_post_event(d)
    best = min(best, time.process_time() - t0)
print(best / len(msgs) * 1e6)
"""


def parse_cost_us(tree: Path, n: int, seed: int, cpu: int) -> float:
    """CPU µs per event of ``tree``'s parse_post_event (best of 5 over n events, one process pinned to ``cpu``)."""
    out = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", _PARSE_COST, str(tree), str(n), str(seed)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def compare_revisions(before: str, n: int, passes: int, seed: int, cpu: int) -> dict:
    """(a) for the code at git revision ``before`` and at HEAD, each a whole run of this
    script's throughput part (``--skip-mutations --passes 1``, its own process pinned to ``cpu``),
    ``passes`` back-to-back pairs, the order flipped every pass, so that load from others hits both alike."""
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="bench-counts-compare-"))
    try:
        # Both sides from fresh copies in the same place: run from the checkout itself, even the runner
        # floor (no project code) came out 10-20 % slower than from /tmp, pass after pass.
        trees = {"before": tmp / "before", "after": tmp / "after"}
        for name, rev in (("before", before), ("after", "HEAD")):
            trees[name].mkdir()
            subprocess.run(f"git archive {rev} | tar -x -C {trees[name]}", shell=True, cwd=ROOT, check=True)
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        env = {k: v for k, v in os.environ.items() if k != "BENCH_COUNTS_PINNED"}
        for i in range(passes):
            order = list(trees.items()) if i % 2 == 0 else list(trees.items())[::-1]  # no side always second
            for name, tree in order:
                out = subprocess.run([sys.executable, str(tree / "bench" / "bench_counts.py"), "--skip-mutations",
                                      "--passes", "1", "--events", str(n), "--seed", str(seed), "--cpu", str(cpu),
                                      "--max-load", "1000"], cwd=tree, env=env, capture_output=True, text=True)
                line = next((l for l in out.stderr.splitlines() if l.startswith('{"throughput"')), None)
                if out.returncode or line is None:
                    raise RuntimeError(f"{name} run failed: {out.stderr[-2000:]}")
                runs[name].append(json.loads(line)["throughput"])
                runs[name][-1]["parse_us"] = parse_cost_us(tree, 30_000, seed, cpu)
                print(f"  compare pass {i + 1} {name}: beam {runs[name][-1]['beam']['median_eps']:,} events/s, "
                      f"baseline {runs[name][-1]['baseline']['median_eps']:,}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"revision": before, "passes": passes, "events": n}
    for name, rs in runs.items():
        res[name] = {row: {key: round(statistics.median(r[row][key] for r in rs))
                           for key in ("median_eps", "cpu_eps")}
                     for row in ("beam", "baseline", "beam_parse", "baseline_parse", "floor")}
        res[name]["ratio_cpu"] = round(statistics.median(r["ratio_cpu"] for r in rs), 3)
        res[name]["parse_us"] = [round(r["parse_us"], 2) for r in rs]
    # the run pairs (before, after) ran back to back: their ratio sees the least load drift
    res["paired"] = {row: [round(a[row]["cpu_eps"] / b[row]["cpu_eps"], 3) for b, a in zip(runs["before"], runs["after"])]
                     for row in ("beam", "baseline", "beam_parse", "baseline_parse", "floor")}
    return res


# ---------------------------------------------------------------------------------------------
# (b) mutations per 1,000 events
def arrival_order(msgs, seed: int, late_share: float = 0.01):
    """(arrival, event time, data, parsed) sorted by arrival: delay = exp(mean 30 s), 1 % 20-90 min."""
    from hashtags.messages import PostEvent, parse_post_event

    rng = random.Random(seed)
    out = []
    for m in msgs:
        e = parse_post_event(m.data, m.attributes)
        if isinstance(e, PostEvent):
            t = e.event_time.timestamp()
        else:  # malformed: stamped with a plausible time; dead-lettered by the parser anyway
            t = NOW.timestamp() - rng.uniform(0, 3 * 3600)
            e = None
        delay = rng.uniform(20 * 60, 90 * 60) if rng.random() < late_share else rng.expovariate(1 / 30)
        out.append((t + delay, t, m.data, e))
    out.sort(key=lambda x: x[0])
    return out


def mutations(n: int, per_firing: int, hours: float, seed: int) -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms import trigger
    from apache_beam.transforms.window import TimestampedValue
    from apache_beam.utils.timestamp import Timestamp

    from devstack import loadgen
    from pipelines.streaming import HourCountRow, WindowedTagCounts
    from pipelines.transforms import ParsePostEvents

    exp = loadgen.Expected()
    msgs = list(loadgen.generate(n, seed=seed, now=NOW, spread_minutes=hours * 60, expected=exp))
    items = arrival_order(msgs, seed)
    early_s = 60  # WindowedTagCounts' default (and the job's --early_firing_seconds default)

    def ms(t: float) -> Timestamp:  # TestStream wants millisecond watermarks
        return Timestamp(micros=int(t * 1000) * 1000)

    stream = TestStream().advance_watermark_to(ms(min(t for _, t, _, _ in items) - 3600))
    batches = 0
    for i in range(0, len(items), per_firing):
        batch = items[i:i + per_firing]
        stream = (stream.add_elements([TimestampedValue(d, t) for _, t, d, _ in batch])
                  .advance_processing_time(early_s + 1)
                  .advance_watermark_to(ms(batch[-1][0] - 300)))
        batches += 1
    stream = stream.advance_processing_time(early_s + 1).advance_watermark_to_infinity()

    opts = PipelineOptions(["--runner=BundleBasedDirectRunner"])
    opts.view_as(StandardOptions).streaming = True
    _SINKS["hours"], _SINKS["rows"] = [], []
    t0 = time.perf_counter()
    with beam.Pipeline(options=opts) as p:
        # Late panes: AfterCount(1) instead of the job's AfterProcessingTime(60 s). Under TestStream the
        # latter fires the late pane correctly, but the DirectRunner then never completes (measured: a
        # "pipeline stall" at the end). With one element batch per 61 s of processing time both fire
        # once per (tag, window) per batch that brought late data, so the write count is the same.
        hours_out = ((p | stream | ParsePostEvents()).events
                     | WindowedTagCounts(late_trigger=trigger.AfterCount(1)))
        hours_out | "CollectHours" >> beam.Map(_sink("hours"))
        (hours_out | beam.ParDo(HourCountRow())
         | beam.Map(lambda r: (r.row_key, len(r._get_mutations())))
         | "CollectRows" >> beam.Map(_sink("rows")))
    run_s = time.perf_counter() - t0
    hour_counts, rows = _SINKS.pop("hours"), _SINKS.pop("rows")

    # what a naive writer would do: one write per (valid event, distinct tag)
    valid = [e for *_, e in items if e is not None]
    naive = sum(len(e.tags()) for e in valid)
    # the bound: distinct tags per window × firings of that window
    tags_per_window: dict[int, set] = collections.defaultdict(set)
    for e in valid:
        w = int(e.event_time.timestamp()) // 3600 * 3600
        tags_per_window[w].update(k for k, _ in e.tags())
    firings: dict[int, int] = collections.defaultdict(int)
    panes_per_window: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    last: dict[tuple, tuple[int, int]] = {}
    for hc in hour_counts:
        w = int(hc.window_start.timestamp())
        firings[w] = max(firings[w], hc.pane_index + 1)
        panes_per_window[w][hc.pane_index] += 1
        k = (hc.key, w)
        if k not in last or hc.pane_index > last[k][0]:
            last[k] = (hc.pane_index, hc.tally.count)
    bound = sum(len(tags_per_window[w]) * firings[w] for w in tags_per_window)
    # correctness: the final cell of every (tag, hour) sums to the generator's exact count per tag
    final = collections.Counter()
    for (key, _), (_, c) in last.items():
        final[key] += c
    assert {k: v for k, v in final.items()} == {k: v for k, v in exp.counts.items()}, "final panes != expected"
    # which firings did happen: early (before the window's end arrived), on time, late
    late_events = sum(1 for arr, t, _, e in items if e is not None and arr - 300 > (int(t) // 3600 + 1) * 3600)
    n_rows, n_cells = len(rows), sum(c for _, c in rows)
    per_k = 1000 / n
    return {
        "events": n, "valid_events": len(valid), "published": exp.published, "deleted": exp.deleted,
        "malformed": exp.malformed, "hours": hours, "windows": len(tags_per_window),
        "element_batches": batches, "events_per_firing": per_firing, "late_events": late_events,
        "distinct_tags": len({k for s in tags_per_window.values() for k in s}),
        "distinct_tags_per_window": {dt.datetime.fromtimestamp(w, UTC).strftime("%H:%M"): len(s)
                                     for w, s in sorted(tags_per_window.items())},
        "firings_per_window": {dt.datetime.fromtimestamp(w, UTC).strftime("%H:%M"): firings[w]
                               for w in sorted(tags_per_window)},
        "rows": n_rows, "cells": n_cells, "naive_writes": naive, "bound": bound,
        "rows_per_1000": round(n_rows * per_k, 1), "cells_per_1000": round(n_cells * per_k, 1),
        "naive_per_1000": round(naive * per_k, 1), "bound_per_1000": round(bound * per_k, 1),
        "bound_holds": n_rows <= bound, "final_counts_exact": True,
        "run_seconds": round(run_s, 1),
    }


# ---------------------------------------------------------------------------------------------
def markdown(cmd: str, info: dict, loads: dict, a: dict | None, b: dict | None, c: dict | None = None) -> str:
    lines = [SECTION, ""]
    lines.append(f"Measured {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/bench_counts.py` "
                 f"(reproduce: `{cmd}`).")
    lines.append("")
    lines.append(f"Machine: nproc={info['nproc']}, CPU: {info['cpu']}, {info['python']}, Beam {info['beam']}, "
                 f"{info['os']}, code at `{info.get('commit', 'unknown')}`; the benchmark process pinned to CPU(s) {info['affinity']} (`taskset`). "
                 f"The 2 cores are shared with other engineers' jobs: `uptime` before: `{loads['before']}`"
                 f"{loads.get('note', '')}; after: `{loads['after']}`. Other load on the pinned core slows every "
                 f"row below alike (passes are interleaved), so read the ratio, not the absolute figures.")
    lines.append("")
    if a:
        lines += [
            "### (a) Throughput of the count transform, one core",
            "",
            f"{a['events']:,} post events from `devstack.loadgen.generate` (their `.data` bytes, "
            f"{a['bytes'] / a['events']:.0f} B each on average; Zipf tags over a mixed-script vocabulary, 1–10 per "
            f"caption, ~5 % deletes, ~2 % malformed; {a['tags']} distinct tags), written once to a JSON-lines file "
            "that every run reads. Beam: `Create([path])` → `FlatMap(read lines)` → the shared `ParsePostEvents` → "
            "`CountTags` (`FlatMap(tag_deltas)` + lifted `CombinePerKey(TallyFn)`), batch, global window, "
            "`FnApiRunner` with `--direct_num_workers=1` (in-process), pipeline construction and startup "
            "included. Baseline: plain Python in the same process over the same file (`parse_post_event`, "
            "`PostEvent.tags()`, a `Counter` of ±1). Runner floor: the same read into a no-op `Map` and one global "
            f"sum. {a['passes']} interleaved passes; Beam and the baseline give identical per-tag totals (asserted). "
            "(Feeding the events with `beam.Create(list)` instead would add ~30 s per 200k events of pickling and "
            "bz2-compressing the list into the pipeline proto: not the transform's cost, so the file.)",
            "",
            "| run | events/s (median, wall) | events/s (best, wall) | events/s per CPU-second (median) | "
            "seconds (median) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, label in (("beam", "**Beam: ParsePostEvents + CountTags, FnApiRunner, 1 core**"),
                            ("baseline", "**baseline: plain Python (parse + distinct tags + Counter)**"),
                            ("beam_parse", "Beam: ParsePostEvents only (→ one global sum)"),
                            ("baseline_parse", "baseline: parse only"),
                            ("floor", "runner floor: read lines → no-op Map → sum, FnApiRunner")):
            r = a[name]
            lines.append(f"| {label} | {r['median_eps']:,} | {r['best_eps']:,} | {r['cpu_eps']:,} | "
                         f"{r['median_wall_s']} |")
        lines += ["", f"Ratio Beam / baseline: **{a['ratio_median']:.2f}** (median wall), {a['ratio_best']:.2f} "
                  f"(best wall), {a['ratio_cpu']:.2f} (per CPU-second of the process, the least load-sensitive).",
                  ""]
        us = {k: 1e6 / a[k]["cpu_eps"] for k in ("beam", "baseline", "beam_parse", "baseline_parse", "floor")}
        lines += [
            "Where the time goes (CPU µs per event, medians): "
            f"baseline {us['baseline']:.0f} = parse {us['baseline_parse']:.0f} + distinct tags and Counter "
            f"{us['baseline'] - us['baseline_parse']:.0f}; Beam {us['beam']:.0f} = runner floor {us['floor']:.0f} "
            f"+ ParsePostEvents {us['beam_parse'] - us['floor']:.0f} (the same `parse_post_event`, plus per-element "
            "work: the clock read for the future bound, a `TimestampedValue` and two `Timestamp`s per event, the "
            f"tagged-output dispatch, a metrics counter) + CountTags {us['beam'] - us['beam_parse']:.0f} (≈ 4.8 `(key, (delta, time, spelling))` "
            "elements per event through `FlatMap(tag_deltas)` and the lifted combiner's `add_input`, then the "
            "shuffle of 400 accumulators). The extraction and parsing are shared with the baseline; the gap is "
            "Beam's per-element cost, which on Dataflow is paid in parallel across workers and which the "
            "streaming job pays at its input rate, not per firing.",
            "",
        ]
    if c:
        lines += [
            f"### (a') Before / after: the code at `{c['revision']}` and at HEAD",
            "",
            f"The throughput part above as whole runs of this script (`--skip-mutations --passes 1`, "
            f"{c['events']:,} events, its own process pinned to the same core), {c['passes']} back-to-back "
            "before/after pairs, the order flipped every pair; medians of the runs. Both the baseline and Beam use the parse of their own "
            "revision, so the ratio Beam / baseline hides a slower parse: compare the rows across the columns.",
            "",
            "| run | before: events/s (wall) | before: per CPU-s | after: events/s (wall) | after: per CPU-s | "
            "after / before (per CPU-s, medians) | after / before, each back-to-back pair (per CPU-s) | "
            "median of the pairs |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for row, label in (("beam", "Beam: ParsePostEvents + CountTags"), ("baseline", "baseline: parse + count"),
                           ("beam_parse", "Beam: ParsePostEvents only"), ("baseline_parse", "baseline: parse only"),
                           ("floor", "runner floor")):
            bf, af = c["before"][row], c["after"][row]
            pairs = c["paired"][row]
            lines.append(f"| {label} | {bf['median_eps']:,} | {bf['cpu_eps']:,} | {af['median_eps']:,} | "
                         f"{af['cpu_eps']:,} | {af['cpu_eps'] / bf['cpu_eps']:.2f} | "
                         f"{', '.join(f'{x:.2f}' for x in pairs)} | **{statistics.median(pairs):.2f}** |")
        beam_medians = c["after"]["beam"]["cpu_eps"] / c["before"]["beam"]["cpu_eps"]
        beam_pairs = statistics.median(c["paired"]["beam"])
        pb, pa = statistics.median(c["before"]["parse_us"]), statistics.median(c["after"]["parse_us"])
        us_beam = 1e6 / c["after"]["beam"]["cpu_eps"]
        ok = min(beam_medians, beam_pairs) >= 0.9
        lines += ["", f"Ratio Beam / baseline per CPU-second: before {c['before']['ratio_cpu']:.2f}, "
                  f"after {c['after']['ratio_cpu']:.2f}. Beam (parse + count) after / before: "
                  f"**{beam_medians:.2f}** per CPU-second (medians), **{beam_pairs:.2f}** (median of the pairs): "
                  f"{'within' if ok else 'NOT within'} the 10 % issue 8 allows for the stricter validation. The "
                  f"spread of the pairs ({min(c['paired']['beam']):.2f}–{max(c['paired']['beam']):.2f}) is other "
                  "jobs on the shared core. The parse alone, timed in a process of its own right after each run "
                  "(best of 5 over 30,000 events, `parse_post_event` with the clock read `ParsePostEventsFn` "
                  f"adds): before {pb:.1f} µs, after {pa:.1f} µs per event (runs: "
                  f"{', '.join(f'{x:.1f}' for x in c['before']['parse_us'])} / "
                  f"{', '.join(f'{x:.1f}' for x in c['after']['parse_us'])}), i.e. {pa - pb:+.1f} µs, "
                  f"{(pa - pb) / us_beam:+.0%} of Beam's {us_beam:.0f} µs per event. The issue's reference, the "
                  "section as it stood (2026-11-23, commit 37eb6ae, load 4–8): Beam 4,905 events/s median wall, "
                  "10,821 per CPU-second, ratio 0.32 wall / 0.46 per CPU-second.", ""]
    if b:
        lines += [
            "### (b) Bigtable mutations per 1,000 post events",
            "",
            f"The real `WindowedTagCounts` (production defaults: FixedWindows 1 h, early AfterProcessingTime(60 s), "
            "ACCUMULATING, 6 h allowed lateness; late panes on AfterCount(1), since a late AfterProcessingTime "
            "trigger keeps the DirectRunner from completing under TestStream — with one element batch per 61 s "
            "of processing time both fire once per tag and window per batch) + `HourCountRow` under a `TestStream` "
            f"(BundleBasedDirectRunner), {b['events']:,} generated events ({b['valid_events']:,} valid: "
            f"{b['published']:,} published, {b['deleted']:,} deleted; {b['malformed']} malformed) over "
            f"{b['hours']:g} h of event time ({b['windows']} hour windows, {b['distinct_tags']} distinct tags). "
            f"Arrival order = event time + delay (exponential, mean 30 s; 1 % 20–90 min late: {b['late_events']} "
            f"events arrived after the watermark passed their window). {b['events_per_firing']:,} events per "
            f"element batch ({b['element_batches']} batches); after each, processing time advances 61 s, so "
            "every window that got new data fires an early pane (one firing per 1,000 events), and the "
            "watermark follows arrival time − 5 min (on-time and late panes fire too). A DirectRow is one "
            "`MutateRows` entry (one row); its cells are `counts:h` + `meta:display` SetCells. The last pane of "
            "every (tag, hour) equals the generator's exact count (asserted), so fewer writes lose nothing.",
            "",
            "| writes | total | per 1,000 post events |",
            "|---|---:|---:|",
            f"| naive: one write per (event, distinct tag) | {b['naive_writes']:,} | {b['naive_per_1000']:,} |",
            f"| bound: Σ over windows of distinct tags × firings | {b['bound']:,} | {b['bound_per_1000']:,} |",
            f"| **measured: DirectRows (rows mutated)** | **{b['rows']:,}** | **{b['rows_per_1000']:,}** |",
            f"| measured: cells (SetCell mutations) | {b['cells']:,} | {b['cells_per_1000']:,} |",
            "",
            "Per window (start UTC): distinct tags / firings (max pane index + 1): " + ", ".join(
                f"{w} {b['distinct_tags_per_window'][w]}/{b['firings_per_window'][w]}"
                for w in b["distinct_tags_per_window"]) + ".",
            "",
            f"Bound holds: **{'yes' if b['bound_holds'] else 'NO'}** ({b['rows']:,} ≤ {b['bound']:,}); rows are "
            f"{b['rows'] / b['naive_writes']:.1%} of the naive writes.",
            "",
        ]
        if len(b.get("sweep", [])) > 1:
            lines += [
                "The same events with the firings spaced differently (events per element batch, i.e. per early "
                "firing); the last pane of every cell is exact in every run (asserted):",
                "",
                "| events per firing | firings (Σ over windows) | DirectRows | rows per 1,000 events | "
                "bound per 1,000 | naive per 1,000 | bound holds |",
                "|---:|---:|---:|---:|---:|---:|---|",
            ]
            for r in b["sweep"]:
                lines.append(f"| {r['events_per_firing']:,} | {sum(r['firings_per_window'].values())} | "
                             f"{r['rows']:,} | {r['rows_per_1000']:,} | {r['bound_per_1000']:,} | "
                             f"{r['naive_per_1000']:,} | {'yes' if r['bound_holds'] else 'NO'} |")
            lines += ["", "Rows follow (distinct tags × firings), not events × tags: the naive count is the same "
                      "in every row, while fewer, fuller firings cut the writes per 1,000 events.", ""]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the ``## Count transform`` section, leaving every other section as is."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pat = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(doc):
        doc = pat.sub(lambda _: text.rstrip("\n") + "\n\n", doc, count=1)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    path.write_text(doc.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000, help="(a) events per throughput pass")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--mutation-events", type=int, default=20_000, help="(b) events through the TestStream")
    ap.add_argument("--per-firing", type=int, default=1_000, help="(b) events between early firings")
    ap.add_argument("--hours", type=float, default=3.0, help="(b) event-time span")
    ap.add_argument("--sweep", default="250,4000",
                    help="(b) also run with these events-per-firing values (comma-separated; '' for none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpu", type=int, default=0, help="the core to pin to")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-mutations", action="store_true")
    ap.add_argument("--max-load", type=float, default=3.0,
                    help="if the 1-min load is above this, wait --wait seconds and retry once")
    ap.add_argument("--wait", type=float, default=90)
    ap.add_argument("--compare", metavar="REV", default=None,
                    help="(a) also for the code at git revision REV against HEAD, alternating runs")
    ap.add_argument("--compare-passes", type=int, default=3)
    ap.add_argument("--compare-events", type=int, default=100_000)
    ap.add_argument("--write-docs", type=Path, default=None, help="replace the section in this markdown file")
    args = ap.parse_args()
    pin_to_one_core(args.cpu)
    import logging
    logging.getLogger("apache_beam").setLevel(logging.ERROR)

    cmd = ".venv/bin/python " + " ".join(["bench/bench_counts.py", *sys.argv[1:]])
    loads = {"before": uptime_line()}
    if load()[0] > args.max_load:
        print(f"load {load()[0]:.2f} > {args.max_load}: waiting {args.wait:.0f} s, then running anyway",
              file=sys.stderr)
        time.sleep(args.wait)
        loads["note"] = (f" (above {args.max_load:g}: waited {args.wait:.0f} s and ran at `{uptime_line()}`; "
                         "a second wait was not taken)" if load()[0] > args.max_load else
                         f" (above {args.max_load:g}: waited {args.wait:.0f} s; then `{uptime_line()}`)")
    a = b = None
    if not args.skip_throughput:
        print(f"(a) throughput, {args.events:,} events × {args.passes} passes", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="bench-counts-") as tmp:
            a = throughput(args.events, args.passes, args.seed, Path(tmp))
        print(json.dumps({"throughput": a}), file=sys.stderr)
    if not args.skip_mutations:
        print(f"(b) mutations, {args.mutation_events:,} events", file=sys.stderr)
        b = mutations(args.mutation_events, args.per_firing, args.hours, args.seed)
        print(json.dumps({"mutations": b}), file=sys.stderr)
        b["sweep"] = [b]
        for per in [int(x) for x in args.sweep.split(",") if x.strip()]:
            print(f"(b) sweep: {per:,} events per firing", file=sys.stderr)
            r = mutations(args.mutation_events, per, args.hours, args.seed)
            print(json.dumps({"mutations": r}), file=sys.stderr)
            b["sweep"].append(r)
        b["sweep"].sort(key=lambda r: r["events_per_firing"])
    c = None
    if args.compare:
        print(f"(a') before/after: {args.compare} vs this checkout", file=sys.stderr)
        c = compare_revisions(args.compare, args.compare_events, args.compare_passes, args.seed, args.cpu)
        print(json.dumps({"compare": c}), file=sys.stderr)
    loads["after"] = uptime_line()
    text = markdown(cmd, machine(), loads, a, b, c)
    print(text)
    if args.write_docs:
        write_section(args.write_docs, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
