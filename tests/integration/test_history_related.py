"""Issue 11's acceptance for the nightly job's history and related tags, on the emulators.

1. Through the real jobs: generated posts over eight event days (known users and tags) are
   published to the RUNNING local streaming job (BundleBasedDirectRunner subprocess), which archives
   them under today's arrival partition; the nightly recount runs (recount_launch.run, FnApiRunner, as the
   other recount tests); every tag's page document (BigtableStore.read_page) then gives, through
   hashtags.history.usage_history, 7 exact days of posts and distinct accounts, and related tags,
   equal to an independent count of the generated posts written here. Then deletes, an edit and
   late posts are published, a tag is hidden with ``python -m hashtag_ops.moderate hide``, and the
   next nightly runs: the days follow (posts exact; accounts by the arrival-day rule of
   hashtags/day_cells.py), the window moved by a day, and the hidden tag is in no related list.
2. Archive files by arrival day (the streaming job's line format, as test_recount_emulator), night
   after night, into two tables: one reconciled nightly (each night run twice), one by a full
   rebuild each night: a rerun rewrites the same day cells, and the incremental table's posts per
   day equal the full rebuild's and a plain count.
"""
from __future__ import annotations

import collections
import datetime as dt
import glob
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from hashtag_store import BigtableStore
from hashtags import archive, layout, normalize_tag, extract_hashtags
from hashtags.history import usage_history
from hashtags.layout import RelatedTag
from hashtags.messages import PostEvent
from hashtags.settings import Settings
from hashtags import planning
from pipelines import recount_launch
from pipelines.transforms import event_json_line
from tests.conftest import INSTANCE, PROJECT
from tests.integration.local_job import publish_in_order, streaming_jobs, wait_for
from tests.integration.post_messages import msg

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]
TAGS = ["sun", "sea", "cat", "dog", "tea", "rain", "Café", "café", "love", "x1", "moon", "star", "wind",
        "leaf", "snow"]
WEIGHTS = [0.6, 0.45, 0.35, 0.3, 0.3, 0.25, 0.12, 0.12, 0.2, 0.15, 0.15, 0.12, 0.1, 0.1, 0.08]
USERS = [f"u{i}" for i in range(6)]


# ---- the independent count (plain Python over the generated events) -------------------------------
class Ev:
    """One generated event: what the test published, in its own terms."""

    def __init__(self, kind, post_id, user, tags, when):
        self.kind, self.post_id, self.user, self.tags, self.when = kind, post_id, user, tags, when

    def caption(self):
        return " ".join("#" + t for t in self.tags)

    def keys(self):
        return {normalize_tag(t) for t in extract_hashtags(self.caption())}


def winners(events, before):
    """Latest event per post with event time before ``before`` (deleted beats published at a tie)."""
    out = {}
    for e in events:
        if e.when < before:
            k = (e.when, e.kind == "deleted")
            if e.post_id not in out or k > out[e.post_id][0]:
                out[e.post_id] = (k, e)
    return [e for _, e in out.values()]


def day_posts(events, before):
    c = collections.Counter()
    for e in winners(events, before):
        if e.kind == "published":
            for k in e.keys():
                c[(k, e.when.date())] += 1
    return c


def day_accounts(events, before):
    users = collections.defaultdict(set)
    for e in winners(events, before):
        if e.kind == "published":
            for k in e.keys():
                users[(k, e.when.date())].add(e.user)
    return {k: len(v) for k, v in users.items()}


def related_lists(events, as_of, hidden=frozenset()):
    """tag → [RelatedTag] for the posts of [M − 7 d, M): pairs on ≥ 3 posts, top 10, ties by tag."""
    pairs, seen = collections.Counter(), set()
    for e in winners(events, as_of):
        if e.kind != "published" or e.when < as_of - 7 * DAY:
            continue
        keys = e.keys()
        seen |= keys
        for a, b in itertools.permutations(sorted(keys - hidden), 2):
            pairs[(a, b)] += 1
    out = {}
    for tag in seen:
        cands = sorted(((n, b) for (a, b), n in pairs.items() if a == tag and n >= 3 and tag not in hidden),
                       key=lambda c: (-c[0], c[1]))[:10]
        out[tag] = tuple(RelatedTag(b, n) for n, b in cands)
    return out


def generate(rnd, start_day, days, per_day, now, prefix):
    events = []
    for d in range(days):
        day = start_day + d * DAY
        end = min(day + DAY, now - dt.timedelta(minutes=1))
        for i in range(per_day):
            tags = [t for t, w in zip(TAGS, WEIGHTS) if rnd.random() < w] or [rnd.choice(TAGS)]
            when = day + dt.timedelta(seconds=rnd.randrange(int((end - day).total_seconds())))
            events.append(Ev("published", f"{prefix}{d}-{i}", rnd.choice(USERS), tags, when))
    return events


# ---- 1: through the streaming job, the nightly job and the page read --------------------------------
def archived_lines(root: Path) -> list[bytes]:
    files = [Path(f) for pattern in archive.partition_glob(str(root)) for f in glob.glob(pattern)]
    return [line for f in files for line in f.read_bytes().split(b"\n") if line]


def archive_days(root: Path) -> set[dt.date]:
    return {archive.partition_day(f) for pattern in archive.partition_glob(str(root)) for f in glob.glob(pattern)}


def publish(s: Settings, events, total: int, archive_root: Path, log: Path):
    publish_in_order(s.project, s.post_events_topic,
                     [(msg(e.post_id, e.caption(), e.when, e.kind, e.user).value, {}) for e in events])
    wait_for(lambda: ((n := len(archived_lines(archive_root))) == total, n), 240,
             f"the archive to hold {total} events", log)


def moderate_hide(s: Settings, tag: str, bigtable_address: str) -> str:
    env = dict(os.environ, BIGTABLE_EMULATOR_HOST=bigtable_address, HASHTAGS_PROJECT=s.project,
               HASHTAGS_BIGTABLE_INSTANCE=s.bigtable_instance, HASHTAGS_TABLE=s.table)
    out = subprocess.run([sys.executable, "-m", "hashtag_ops.moderate", "hide", tag, "--reason", "test"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def nightly(s: Settings, tmp: Path, as_of: dt.date):
    out = recount_launch.run(planning.JobConfig(
        planning.plan_nightly(as_of, None), str(tmp / "archive"), str(tmp / "reports"), s.bigtable_instance, s.table,
        f"{s.table}-state", project=s.project))
    assert out.exit_code in (recount_launch.EXIT_OK, recount_launch.EXIT_DRIFT), out.message
    return out


def history_of(store, tags, now):
    """(tag, day) → (posts, accounts) of the 7 days usage_history shows, every one exact."""
    got = {}
    for tag in tags:
        doc = store.read_page(tag)
        for point in usage_history(doc, now).days:
            assert point.exact, (tag, point)
            got[(tag, point.day)] = (point.posts, point.accounts)
    return got


def expected_history(tags, days, posts, accounts):
    return {(t, d): (posts.get((t, d), 0), accounts.get((t, d))) for t in tags for d in days}


@pytest.mark.slow
def test_history_and_related_through_the_real_jobs(bigtable_emulator, pubsub_emulator, tmp_path):
    s = Settings(project="history-hashtags", bigtable_instance=INSTANCE, table="history")
    rnd = random.Random(11)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    today = layout.midnight_utc(now.date())
    batch1 = generate(rnd, today - 6 * DAY, 7, 22, now, "p")  # event days today-6 .. today
    batch1.append(Ev("published", "solo", "u0", ["solo", "sun"], today - 3 * DAY))  # under the support
    with streaming_jobs(s, tmp_path, pubsub_emulator, bigtable_emulator) as jobs:
        publish(s, batch1, len(batch1), tmp_path / "archive", jobs.post_events_log)
        m = max(archive_days(tmp_path / "archive")) + DAY  # tomorrow (unless the test crossed midnight)
        m_time = layout.midnight_utc(m)
        assert all(e.when < m_time for e in batch1)

        first = nightly(s, tmp_path, m)
        assert first.plan.mode == "full_rebuild"  # the first run
        store = BigtableStore(s.project, s.bigtable_instance, s.table)
        tags = sorted({k for e in batch1 for k in e.keys()})
        shown = [m - i * DAY for i in range(1, 8)]  # the 7 days before M, newest first
        now_shown = m_time - dt.timedelta(minutes=1)
        posts1, accounts1 = day_posts(batch1, m_time), day_accounts(batch1, m_time)
        want1 = expected_history(tags, shown, posts1, accounts1)
        got1 = history_of(store, tags, now_shown)
        assert got1 == want1
        assert sum(p for p, _ in want1.values()) > 150 and sum(1 for _, a in want1.values() if a) > 60
        assert any(a is not None and a < p for p, a in want1.values())  # accounts are distinct users
        related1 = related_lists(batch1, m_time)
        for tag in tags:
            doc = store.read_page(tag)
            assert doc.related == related1[tag], tag
            assert doc.related_as_of == m_time
        assert any(len(v) == 10 for v in related1.values()) and related1["solo"] == ()
        r = first.report  # the run's in-graph figures: one cell per (tag, day) / tag written
        assert (r["day_post_cells_written"], r["day_account_cells_written"], r["related_cells_written"],
                r["related_posts"]) == (len(posts1), len(accounts1), len(related1), len(batch1))
        hidden = "sea"
        assert sum(hidden in [r.tag for r in v] for v in related1.values()) >= 5

        # the next arrivals: deletes and an edit of older posts, late posts of yesterday; and the
        # operator hides a tag
        old = [e for e in batch1 if e.when.date() == (m - 3 * DAY)]
        later = max(now, max(e.when for e in batch1)) + dt.timedelta(seconds=5)
        deletes = [Ev("deleted", e.post_id, e.user, e.tags, later) for e in old[:6]]
        edited = next(e for e in batch1 if e.when.date() == m - 4 * DAY and "sun" in e.keys())
        edit = [Ev("published", edited.post_id, edited.user, ["snow", "wind"], later)]
        late = generate(rnd, today - DAY, 1, 8, now, "late")
        batch2 = deletes + edit + late
        publish(s, batch2, len(batch1) + len(batch2), tmp_path / "archive", jobs.post_events_log)
    assert "hidden" in moderate_hide(s, "#SEA", bigtable_emulator.address)

    second = nightly(s, tmp_path, m + DAY)
    assert (second.plan.mode, second.plan.arrived_from, second.plan.arrived_to) == ("nightly", m - DAY, m)
    everything = batch1 + batch2
    m2 = m_time + DAY
    posts2 = day_posts(everything, m2)
    # accounts: the days the second run read (arrival days M-1 and M) from it, the others from the first
    accounts2 = dict(accounts1)
    read_days = {m - DAY, m}
    for key in [k for k in accounts2 if k[1] in read_days]:
        accounts2[key] = 0
    accounts2.update({k: v for k, v in day_accounts(everything, m2).items() if k[1] in read_days})
    tags2 = sorted(set(tags) | {k for e in batch2 for k in e.keys()})
    got2 = history_of(store, tags2, now_shown)
    assert got2 == expected_history(tags2, shown, posts2, accounts2)
    # the deleted posts' day: posts exact, accounts as the first run saw them (the day is not re-read)
    d3 = m - 3 * DAY
    assert sum(got2[(k, d3)][0] for k in tags) == sum(got1[(k, d3)][0] for k in tags) - sum(
        len(e.keys()) for e in deletes) > 0
    assert [got2[(k, d3)][1] for k in tags] == [got1[(k, d3)][1] for k in tags]
    assert sum(got2[(k, m - 2 * DAY)][0] for k in tags2) > sum(got1[(k, m - 2 * DAY)][0] for k in tags)  # late posts

    related2 = related_lists(everything, m2, hidden=frozenset({hidden}))
    assert related2 != related_lists(everything, m2)  # hiding changed something
    for tag in tags2:
        doc = store.read_page(tag)
        assert hidden not in [r.tag for r in doc.related], tag
        if tag in related2:
            assert (doc.related, doc.related_as_of) == (related2[tag], m2), tag
        else:  # not seen in the moved window: the first run's list stays (the page ages it out)
            assert (doc.related, doc.related_as_of) == (related1[tag], m_time), tag
    assert related2[hidden] == ()
    store.close()


# ---- 2: rerun and full rebuild, night after night ----------------------------------------------------
START = dt.date(2031, 3, 1)  # far from the wall clock (GC collects cells by age, the emulator at once)


def write_night(root: Path, day: dt.date, events, name):
    d = root / archive.partition_name(day)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.jsonl").write_text("".join(event_json_line(e) + "\n" for e in events), encoding="utf-8")


def run(tmp, table, as_of, mode):
    out = recount_launch.run(planning.JobConfig(
        planning.plan_run(mode, run_day=as_of, as_of=as_of), str(tmp / "archive"), str(tmp / "reports" / table),
        INSTANCE, table, f"{table}-state", project=PROJECT))
    assert out.exit_code in (recount_launch.EXIT_OK, recount_launch.EXIT_DRIFT), out.message
    return out


def day_table(store, tags):
    return {(t, d.day): (d.posts, d.accounts) for t in tags if (doc := store.read_page(t)) for d in doc.days}


def test_reruns_rewrite_the_same_day_cells_and_nightly_equals_a_full_rebuild(bigtable_emulator, tmp_path):
    from hashtag_store import create_table

    rnd = random.Random(4)
    inc, full = "inc" + os.urandom(4).hex(), "full" + os.urandom(4).hex()
    for t in (inc, full):
        create_table(PROJECT, INSTANCE, t)
    inc_store, full_store = BigtableStore(PROJECT, INSTANCE, inc), BigtableStore(PROJECT, INSTANCE, full)
    seen: list[PostEvent] = []
    tags = sorted({normalize_tag(t) for t in TAGS})
    for night in range(4):
        arrival = START + night * DAY
        as_of = arrival + DAY
        events = []
        for i in range(60):
            late = rnd.choice([0, 0, 0, 1, 3])  # some arrive days after their event day
            when = layout.midnight_utc(arrival - late * DAY) + dt.timedelta(seconds=rnd.randrange(86_400))
            events.append(PostEvent("published", f"n{night}-{i}", rnd.choice(USERS),
                                    " ".join("#" + t for t in rnd.sample(TAGS, rnd.randint(1, 3))),
                                    "https://img.example/a.jpg", when))
        for e in rnd.sample(seen, min(len(seen), 8)):  # deletes and edits of earlier posts
            when = layout.midnight_utc(arrival) + dt.timedelta(seconds=rnd.randrange(86_400))
            kind = rnd.choice(["deleted", "published"])
            events.append(PostEvent(kind, e.post_id, e.user_id, "#" + rnd.choice(TAGS),
                                    None if kind == "deleted" else e.image_url, when))
        write_night(tmp_path / "archive", arrival, events, f"night{night}")
        seen += events

        run(tmp_path, inc, as_of, "nightly")
        first = day_table(inc_store, tags)
        run(tmp_path, inc, as_of, "nightly")  # the same night again
        assert day_table(inc_store, tags) == first
        run(tmp_path, full, as_of, "full_rebuild")
        rebuilt = day_table(full_store, tags)
        posts = lambda table: {k: p for k, (p, _) in table.items() if p}  # noqa: E731
        want = {(k, d): n for (k, d), n in day_posts(
            [Ev(e.event, e.post_id, e.user_id, [x for _, x in e.tags()], e.event_time) for e in seen],
            layout.midnight_utc(as_of)).items() if n}
        assert posts(first) == posts(rebuilt) == want, night
    assert len(want) > 40
    inc_store.close()
    full_store.close()
