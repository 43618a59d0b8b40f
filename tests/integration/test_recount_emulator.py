"""The reconciliation end to end on the Bigtable emulator, through its launcher (a typed request,
``pipelines.recount_launch.run``, FnApiRunner): live hour
cells that drifted (duplicated and dropped deliveries), an archive by ARRIVAL day in the streaming
job's layout; after each run every tag's total equals the exact count, the drift report names
exactly the drifted tags, a rerun changes nothing, and the next night reads only its own days."""
from __future__ import annotations

import collections
import datetime as dt
import json
import random

import pytest

from hashtag_store import mutations, post_state as state_store
from hashtags import archive, layout, planning
from hashtags.messages import PostEvent
from hashtags.planning import JobConfig
from pipelines import recount_launch
from pipelines.transforms import event_json_line
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
# Far from the wall clock: the counts family collects cells older than 14 days (beyond the newest
# 3 versions) and the emulator collects at once, so hour cells of a past fortnight would vanish.
AS_OF = dt.datetime(2031, 3, 23, tzinfo=UTC)
TAGS = ["love", "Love", "cat", "dog", "sun", "ｓｕｎ", "rain", "tea"]


def make_events(seed=3, posts=150, start=dt.datetime(2031, 3, 20, tzinfo=UTC), hours=3 * 24 + 6):
    """Events from ``start`` over ``hours`` (some after AS_OF), with deletes, edits, re-publishes.
    Around and after AS_OF only plain publishes: the live count cannot take back an edit's old
    tags, so the hour cells after a base are exact only for those."""
    rnd = random.Random(seed)
    events = []
    for i in range(posts):
        t = start + dt.timedelta(minutes=rnd.randrange(0, hours * 60))
        tags = rnd.sample(TAGS, rnd.randint(1, 3))
        pid = f"p{seed}-{i}"
        ev = PostEvent("published", pid, f"u{i % 7}", " ".join("#" + x for x in tags), "https://img.example/a.jpg",
                       t, event_id=f"{pid}-1")
        events.append(ev)
        r = rnd.random() if t < AS_OF - dt.timedelta(hours=3) else 1.0  # after AS_OF: plain publishes
        if r < 0.15:
            events.append(PostEvent("deleted", pid, ev.user_id, ev.caption, None, t + dt.timedelta(hours=2),
                                    event_id=f"{pid}-2"))
        elif r < 0.25:
            new_tags = rnd.sample(TAGS, 2)
            events.append(PostEvent("published", pid, ev.user_id, " ".join("#" + x for x in new_tags),
                                    ev.image_url, t + dt.timedelta(hours=1), event_id=f"{pid}-2"))
    return events


def arrival_day(e: PostEvent) -> dt.date:
    return e.event_time.astimezone(UTC).date()


def streaming_hour_cells(events):
    """What an exactly-once streaming job writes: +1/-1 per event per distinct tag per hour."""
    cells = collections.Counter()
    for e in events:
        for key, _ in e.tags():
            cells[(key, layout.hour_start(e.event_time))] += e.delta
    return cells


def exact_totals(events):
    """Reference: latest event per post over ALL events (the page's total = exact count now)."""
    latest = {}
    for e in sorted(events, key=lambda e: (e.event_time, e.event == "deleted", e.event_id or "")):
        latest[e.post_id] = e
    c = collections.Counter()
    for e in latest.values():
        if e.event == "published":
            for key, _ in e.tags():
                c[key] += 1
    return c


def write_archive(root, events, day_of=arrival_day, name="events"):
    files = collections.defaultdict(list)
    for i, e in enumerate(events):
        files[(day_of(e), i % 2)].append(event_json_line(e))
    for (day, n), lines in files.items():
        d = root / archive.partition_name(day)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}-{n}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def totals(store):
    return {k: t for k, t, _ in store.scan_totals()}


def request(tmp_path, table_name, as_of: str, *, dry_run: bool = False, **kw) -> JobConfig:
    """A nightly for the midnight ``as_of`` (the job narrows its range from its run record)."""
    plan = planning.plan_nightly(planning.parse_day(as_of), None, dry_run=dry_run)
    return JobConfig(plan, str(tmp_path / "archive"), str(tmp_path / "reports"), INSTANCE, table_name,
                     f"{table_name}-state", project=PROJECT, **kw)


def test_nightly_repairs_drift_is_idempotent_and_reads_only_new_days(store, table_name, tmp_path):
    rnd = random.Random(11)
    events = make_events()
    before_as_of = [e for e in events if e.event_time < AS_OF]
    # Drift before as_of: duplicated deliveries counted twice live (and archived twice), events the
    # live count dropped (archived, not counted), edits (the live count counts both captions).
    # After as_of only what the live count saw, so the hour cells at/after as_of are exact.
    duplicates = rnd.sample(before_as_of, 20)
    dropped = rnd.sample([e for e in before_as_of if e not in duplicates], 10)
    live = [e for e in events if e not in dropped] + duplicates
    store.write_hour_counts([(k, h, n, None) for (k, h), n in streaming_hour_cells(live).items()])
    # a tag in the table with no post in the archive at all → base 0
    store.write_hour_counts([("phantom", dt.datetime(2031, 3, 21, 5, tzinfo=UTC), 4, None)])
    write_archive(tmp_path / "archive", [e for e in events + duplicates if arrival_day(e) < AS_OF.date()])

    before = totals(store)
    exact = exact_totals(events)
    expected_drifted = {k for k in set(before) | set(exact) if before.get(k, 0) != exact.get(k, 0)}

    night = request(tmp_path, table_name, "2031-03-23")
    out = recount_launch.run(night)
    assert out.exit_code == 0, out.message
    assert out.plan.mode == planning.FULL_REBUILD  # the first run: no state yet
    after = totals(store)
    assert {k: v for k, v in after.items() if v} == dict(exact)
    assert after["phantom"] == 0
    report = json.loads((tmp_path / "reports" / "drift-2031-03-23.json").read_text())
    assert {t["tag"] for t in report["drifted_tags"]} == expected_drifted
    for t in report["drifted_tags"]:
        assert (t["before"], t["after"]) == (before.get(t["tag"], 0), exact.get(t["tag"], 0))
    assert report["events_read"] == sum(1 for e in events + duplicates if arrival_day(e) < AS_OF.date())
    assert report["tags_drifted"] == len(expected_drifted) > 0
    md = (tmp_path / "reports" / "drift-2031-03-23.md").read_text()
    assert "phantom" in md and "+4" in md
    last = state_store.last_run(PROJECT, INSTANCE, f"{table_name}-state")
    assert last == planning.LastRun(AS_OF.date(), dt.date(2031, 3, 22))

    # the same night again: nothing left to repair, nothing changes
    out2 = recount_launch.run(night)
    assert out2.exit_code == 0, out2.message
    assert totals(store) == after
    assert out2.report["tags_drifted"] == 0 and out2.report["drifted_tags"] == []

    # the next night: the day of 2031-03-23 arrives (the events after AS_OF), plus a late event of
    # 2031-03-21 (a post the live count never saw) and a redelivery of an old day's event
    late = PostEvent("published", "late-1", "u", "#late #cat", "https://img.example/l.jpg",
                     dt.datetime(2031, 3, 21, 9, tzinfo=UTC), event_id="late-1")
    day3 = [e for e in events if arrival_day(e) == AS_OF.date()] + [late, before_as_of[0]]
    write_archive(tmp_path / "archive", day3, day_of=lambda e: AS_OF.date(), name="day3")
    # 300 older tags, each with a base at the recorded run, that no event of the night touches
    old = [mutations.base_count_row(f"old{i}", AS_OF, 7) for i in range(300)]
    store.mutate(old)
    out3 = recount_launch.run(request(tmp_path, table_name, "2031-03-24"))
    assert out3.exit_code == 0, out3.message
    # a night reads the rows of the tags it touched (point reads), never the older ones
    touched = {k for e in day3 + [e for e in events + duplicates if arrival_day(e) == dt.date(2031, 3, 22)]
               if e.event_time < AS_OF + dt.timedelta(days=1) for k, _ in e.tags()}
    assert len(touched) <= out3.report["tags_touched"] <= len(TAGS) + 1 < 300
    assert out3.report["table_rows"] <= out3.report["tags_touched"]
    assert all(totals(store)[f"old{i}"] == 7 for i in range(300))
    assert (out3.plan.mode, out3.plan.arrived_from, out3.plan.arrived_to) == (
        planning.NIGHTLY, dt.date(2031, 3, 22), dt.date(2031, 3, 23))  # one day of overlap
    assert out3.report["events_read"] == len(day3) + sum(
        1 for e in events + duplicates if arrival_day(e) == dt.date(2031, 3, 22))
    want = exact_totals(events + [late])
    assert {k: v for k, v in totals(store).items() if v and not k.startswith("old")} == dict(want)
    # tags "late" (no row) and "cat" (+1 from the late post) are the drifted ones
    assert {t["tag"]: t["diff"] for t in out3.report["drifted_tags"]} == {"late": -1, "cat": -1}


def test_dry_run_writes_nothing_and_threshold_fails(store, table_name, tmp_path):
    e = PostEvent("published", "p1", "u", "#one #two", "https://img.example/a.jpg",
                  dt.datetime(2031, 3, 22, 10, tzinfo=UTC), event_id="e1")
    write_archive(tmp_path / "archive", [e])
    store.write_hour_counts([("one", dt.datetime(2031, 3, 22, 10, tzinfo=UTC), 3, None)])
    out = recount_launch.run(request(tmp_path, table_name, "2031-03-23", dry_run=True, drift_threshold=0.5))
    assert out.exit_code == recount_launch.EXIT_DRIFT  # |3-1| + |0-1| = 3 over Σ after 2 = 150 %
    assert out.report["dry_run"] is True and out.report["base_cells_written"] == 0
    assert totals(store) == {"one": 3}  # nothing written
    assert [(t["tag"], t["diff"]) for t in out.report["drifted_tags"]] == [("one", 2), ("two", -1)]
    assert state_store.last_run(PROJECT, INSTANCE, f"{table_name}-state") is None  # nor recorded


def test_refuses_an_empty_archive_and_going_back_in_time(store, table_name, tmp_path):
    store.write_hour_counts([("one", dt.datetime(2031, 3, 22, 10, tzinfo=UTC), 3, None)])
    (tmp_path / "archive").mkdir()
    out = recount_launch.run(request(tmp_path, table_name, "2031-03-23"))
    assert out.exit_code == recount_launch.EXIT_BAD_INPUT, out.message
    assert totals(store) == {"one": 3}

    e = PostEvent("published", "p1", "u", "#one", "https://img.example/a.jpg",
                  dt.datetime(2031, 3, 22, 10, tzinfo=UTC), event_id="e1")
    write_archive(tmp_path / "archive", [e])
    assert recount_launch.run(request(tmp_path, table_name, "2031-03-24")).exit_code == 0
    back = recount_launch.run(request(tmp_path, table_name, "2031-03-23"))
    assert back.exit_code == recount_launch.EXIT_BAD_INPUT and "back in time" in back.message
    # the entry file's flags: a bad request exits 2 before anything runs
    assert recount_launch.main([f"--archive_path={tmp_path / 'archive'}", "--as_of=2031-03-24", "--mode=reapply",
                                "--arrived_from=2031-03-25", "--arrived_to=2031-03-20", f"--bigtable_table={table_name}",
                                f"--post_state_table={table_name}-state"]) == recount_launch.EXIT_BAD_INPUT
