"""What the live-accounts and trends branches add to the streaming job, per event, and their state.

    .venv/bin/python bench/bench_trends.py [--events 60000]

Function level, in one process (not the runner: the local BundleBasedDirectRunner's own per-element
cost, ~5 ms, would hide both): the same parsed events (devstack.loadgen.generate over one hour of
event time) go, pass by pass interleaved,
  (a) "counts only": ``tag_deltas`` + ``TallyFn.add_input`` per (tag, hour) — what the job did before;
  (b) "+ live accounts + trends": (a) + ``account_uses`` + ``DistinctAccountsFn`` per (tag, hour)
      + ``MinuteUseFn`` per (tag, minute) + per tag-minute ``trends.add`` + ``trends.evaluate`` when
      ScoreTags' timers would fire (after a minute the tag was used in, every minute while listed,
      at hour boundaries).
CPU per event = process time / events (median of the passes). State: the pickled size of each
active tag's TagState at the end of the hour (what Beam keeps per key; PickleCoder) and of the hour's
account set, for the median tag and the hottest; plus one synthetic hot tag with 100,000 accounts.
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datetime as dt  # noqa: E402

from devstack.loadgen import generate  # noqa: E402
from hashtags import trends  # noqa: E402
from hashtags.messages import PostEvent, parse_post_event  # noqa: E402
from pipelines.transforms import TallyFn, tag_deltas  # noqa: E402
from pipelines.trends import DistinctAccountsFn, MinuteUseFn, account_uses  # noqa: E402

START = dt.datetime(2026, 12, 7, 10, tzinfo=dt.timezone.utc)


def events(n: int) -> list[PostEvent]:
    out = []
    for m in generate(n, seed=3, malformed=0.0, now=START + dt.timedelta(hours=1), spread_minutes=59):
        parsed = parse_post_event(m.data)
        if isinstance(parsed, PostEvent):
            out.append(parsed)
    return out


def counts_only(evs):
    fn, acc = TallyFn(), {}
    for e in evs:
        for key, v in tag_deltas(e):
            acc[key] = fn.add_input(acc.get(key) or fn.create_accumulator(), v)
    return acc


def with_trends(evs):
    counts_only(evs)
    hour_fn, minute_fn = DistinctAccountsFn(), MinuteUseFn()
    hour_acc, minute_acc, states = {}, {}, {}
    current = None
    for e in evs:
        minute = trends.minute_floor(int(e.event_time.timestamp() * 1000))
        if current is not None and minute > current:  # the minute closed: its panes, then timers
            _flush(minute_fn, minute_acc, states, current)
            current = minute
        current = current or minute
        for key, v in account_uses(e):
            hour_acc[key] = hour_fn.add_input(hour_acc.get(key) or hour_fn.create_accumulator(), v)
            k = (key, minute)
            minute_acc[k] = minute_fn.add_input(minute_acc.get(k) or minute_fn.create_accumulator(), v)
    _flush(minute_fn, minute_acc, states, current)
    return hour_acc, states


def _flush(minute_fn, minute_acc, states, minute):
    """The minute's panes, then the timers that fire at its end: ScoreTags evaluates a tag after a
    minute it was used in, every minute while it is listed, and at hour boundaries."""
    touched = set()
    for (key, m), acc in minute_acc.items():
        accounts, posts, display = minute_fn.extract_output(acc)
        trends.add(states.setdefault(key, trends.TagState()), m, accounts, posts, display)
        touched.add(key)
    minute_acc.clear()
    now = minute + trends.MINUTE_MS
    for key, st in states.items():
        if key in touched or st.listed or now % trends.HOUR_MS == 0:
            st.listed = trends.evaluate(st, now).score > 0


def cpu(fn, evs) -> float:
    t = time.process_time()
    fn(evs)
    return (time.process_time() - t) / len(evs) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    evs = sorted(events(args.events), key=lambda e: e.event_time)
    a, b = [], []
    for _ in range(args.passes):
        a.append(cpu(counts_only, evs))
        b.append(cpu(with_trends, evs))
    hour_acc, states = with_trends(evs)
    state_sizes = sorted(len(pickle.dumps(s)) for s in states.values())
    set_sizes = sorted(len(pickle.dumps(s)) for s in hour_acc.values())
    hot = max(hour_acc, key=lambda k: len(hour_acc[k]))
    big = trends.TagState()
    for i in range(100):
        trends.add(big, trends.minute_floor(int(START.timestamp() * 1000)) + (i % 60) * trends.MINUTE_MS,
                   range(i * 1000, (i + 1) * 1000), 1000)
    load = os.getloadavg()
    print(f"events {len(evs)}, active tags {len(states)}, passes {args.passes}, load {load[0]:.2f} {load[1]:.2f}")
    print(f"CPU per event: counts only {statistics.median(a):.1f} µs; + live accounts + trends "
          f"{statistics.median(b):.1f} µs")
    print(f"TagState pickled: median {state_sizes[len(state_sizes) // 2]} B, max {state_sizes[-1]} B; "
          f"hour account set pickled: median {set_sizes[len(set_sizes) // 2]} B, "
          f"hottest #{hot} {len(hour_acc[hot])} accounts {len(pickle.dumps(hour_acc[hot]))} B")
    print(f"synthetic hot tag, 100,000 accounts in the hour: TagState {len(pickle.dumps(big)):,} B")


if __name__ == "__main__":
    main()
