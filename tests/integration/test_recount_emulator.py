"""The recount end to end on the Bigtable emulator: live hour cells that drifted (duplicated and
dropped deliveries), an archive in the streaming job's layout, the recount via its main; afterwards
every tag's total equals the exact count, the drift report names exactly the drifted tags, and a
second run changes nothing."""
from __future__ import annotations

import collections
import datetime as dt
import json
import random

import pytest

from hashtags import layout
from hashtags.messages import PostEvent, parse_post_event
from pipelines import recount_main
from pipelines.transforms import archive_partition, event_json_line
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 23, tzinfo=UTC)
TAGS = ["love", "Love", "cat", "dog", "sun", "ｓｕｎ", "rain", "tea"]


def make_events(seed=3, posts=150):
    """Events over 2026-11-20 .. 2026-11-23 06:00 (some after as_of), with deletes, edits, re-publishes."""
    rnd = random.Random(seed)
    start = dt.datetime(2026, 11, 20, tzinfo=UTC)
    events = []
    for i in range(posts):
        t = start + dt.timedelta(minutes=rnd.randrange(0, 3 * 24 * 60 + 360))
        tags = rnd.sample(TAGS, rnd.randint(1, 3))
        pid = f"p{i}"
        ev = PostEvent("published", pid, f"u{i % 7}", " ".join("#" + x for x in tags), "https://img.example/a.jpg",
                       t, event_id=f"{pid}-1")
        events.append(ev)
        r = rnd.random() if t < AS_OF - dt.timedelta(hours=3) else 1.0  # after as_of: plain publishes
        if r < 0.15:
            events.append(PostEvent("deleted", pid, ev.user_id, ev.caption, None, t + dt.timedelta(hours=2),
                                    event_id=f"{pid}-2"))
        elif r < 0.25:
            new_tags = rnd.sample(TAGS, 2)
            events.append(PostEvent("published", pid, ev.user_id, " ".join("#" + x for x in new_tags),
                                    ev.image_url, t + dt.timedelta(hours=1), event_id=f"{pid}-2"))
    return events


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


def write_archive(root, events, duplicates):
    files = collections.defaultdict(list)
    for i, e in enumerate(events + duplicates):
        files[(archive_partition(e), i % 2)].append(event_json_line(e))
    for (part, n), lines in files.items():
        d = root / part
        d.mkdir(parents=True, exist_ok=True)
        (d / f"events-{n}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def totals(store):
    return {k: t for k, t, _ in store.scan_totals()}


def test_recount_repairs_drift_and_is_idempotent(store, table_name, tmp_path):
    rnd = random.Random(11)
    events = make_events()
    # Drift before as_of: duplicated deliveries counted twice live, late events the live count
    # dropped (archived, not counted), and edits (the live count counts both captions). After
    # as_of only plain publishes, so the hour cells at/after as_of are exact and the whole total
    # must come out exact.
    duplicates = rnd.sample([e for e in events if e.event_time < AS_OF], 20)
    dropped = rnd.sample([e for e in events if e.event_time < AS_OF and e not in duplicates], 10)
    live = [e for e in events if e not in dropped] + duplicates
    cells = streaming_hour_cells(live)
    store.write_hour_counts([(k, h, n, None) for (k, h), n in cells.items()])
    # a tag that exists in the table but has no post in the archive at all → base 0
    store.write_hour_counts([("phantom", dt.datetime(2026, 11, 21, 5, tzinfo=UTC), 4, None)])
    archive = tmp_path / "archive"
    write_archive(archive, events, duplicates)

    before = totals(store)
    exact = exact_totals(events)
    expected_drifted = {k for k in set(before) | set(exact) if before.get(k, 0) != exact.get(k, 0)}

    argv = [f"--archive_path={archive}", "--as_of=2026-11-23", f"--project={PROJECT}",
            f"--bigtable_instance={INSTANCE}", f"--bigtable_table={table_name}",
            f"--report_path={tmp_path / 'reports'}"]
    out = recount_main.run_recount(argv)
    assert out.exit_code == 0, out.message
    after = totals(store)
    # every tag's total (base + hour cells at/after as_of) equals the exact count
    assert {k: v for k, v in after.items() if v} == dict(exact)
    assert after["phantom"] == 0
    report = json.loads((tmp_path / "reports" / "drift-2026-11-23.json").read_text())
    named = {t["tag"] for t in report["drifted_tags"]}
    # the report compares like with like: diff = before - after for the hour cells ≥ as_of too
    assert named == expected_drifted
    for t in report["drifted_tags"]:
        assert (t["before"], t["after"]) == (before.get(t["tag"], 0), exact.get(t["tag"], 0))
    # only the partitions before as_of are read
    assert report["events_read"] == sum(1 for e in events + duplicates if e.event_time < AS_OF)
    assert report["tags_drifted"] == len(named) > 0
    md = (tmp_path / "reports" / "drift-2026-11-23.md").read_text()
    assert "phantom" in md and "+4" in md

    # second run: nothing left to repair
    out2 = recount_main.run_recount(argv)
    assert out2.exit_code == 0
    assert totals(store) == after
    assert out2.report["tags_drifted"] == 0 and out2.report["drifted_tags"] == []


def test_dry_run_writes_nothing_and_threshold_fails(store, table_name, tmp_path):
    archive = tmp_path / "archive"
    e = PostEvent("published", "p1", "u", "#one #two", "https://img.example/a.jpg",
                  dt.datetime(2026, 11, 22, 10, tzinfo=UTC), event_id="e1")
    write_archive(archive, [e], [])
    store.write_hour_counts([("one", dt.datetime(2026, 11, 22, 10, tzinfo=UTC), 3, None)])
    argv = [f"--archive_path={archive}", "--as_of=2026-11-23", f"--project={PROJECT}",
            f"--bigtable_instance={INSTANCE}", f"--bigtable_table={table_name}",
            f"--report_path={tmp_path / 'r'}", "--report_only", "--drift_threshold=0.5"]
    out = recount_main.run_recount(argv)
    assert out.exit_code == recount_main.EXIT_DRIFT  # |3-1| + |0-1| = 3 over Σ after 2 = 150 %
    assert out.report["dry_run"] is True and out.report["base_cells_written"] == 0
    assert totals(store) == {"one": 3}  # nothing written
    assert [(t["tag"], t["diff"]) for t in out.report["drifted_tags"]] == [("one", 2), ("two", -1)]


def test_refuses_an_empty_archive(store, table_name, tmp_path):
    store.write_hour_counts([("one", dt.datetime(2026, 11, 22, 10, tzinfo=UTC), 3, None)])
    out = recount_main.run_recount([f"--archive_path={tmp_path}", "--as_of=2026-11-23", f"--project={PROJECT}",
                                    f"--bigtable_instance={INSTANCE}", f"--bigtable_table={table_name}"])
    assert out.exit_code == recount_main.EXIT_BAD_INPUT
    assert totals(store) == {"one": 3}


def test_backfill_dry_run_then_full_rebuild_of_a_lost_table(bigtable_emulator, table_name, tmp_path):
    """The backfill command: a dry run writes nothing (not even the table); a full rebuild creates the
    missing table and restores every tag's exact count from the archive."""
    from hashtag_store import BigtableStore
    from pipelines import backfill

    events = [e for e in make_events(seed=5, posts=60) if e.event_time < AS_OF]
    archive = tmp_path / "archive"
    write_archive(archive, events, events[:5])
    common = ["--archive", str(archive), "--project", PROJECT, "--instance", INSTANCE, "--table", table_name,
              "--report-path", str(tmp_path / "r"), "--no-progress"]
    today = AS_OF.date()
    assert backfill.main(common + ["--from", "2026-11-20", "--to", "2026-11-22", "--dry-run"], today=today) == 0
    report = json.loads((tmp_path / "r" / "drift-2026-11-23.json").read_text())
    assert report["dry_run"] is True and report["total_before"] == 0
    assert report["total_after"] == sum(exact_totals(events).values())

    assert backfill.main(common + ["--full-rebuild"], today=today) == 0
    store = BigtableStore(PROJECT, INSTANCE, table_name)
    assert {k: v for k, v in totals(store).items() if v} == dict(exact_totals(events))
