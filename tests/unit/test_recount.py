"""The recount's counting (Beam, FnApiRunner via TestPipeline) against a plain-Python reference count
written here, independently of pipelines.recount: latest event per post wins, duplicates once,
deletes zero, re-publish after delete counts, edits count the latest caption, late events count,
events at/after as_of do not, tags differing only by case/width are one key."""
from __future__ import annotations

import collections
import datetime as dt
import json
import random

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from hashtags import extract_hashtags, normalize_tag
from hashtags.messages import PostEvent, parse_post_event
from pipelines import recount
from pipelines.drift import DriftAccumulator, TagDrift

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 23, tzinfo=UTC)


def line(event, post_id, caption, t, event_id=None, **extra):
    d = {"event": event, "post_id": post_id, "user_id": "u-" + post_id, "caption": caption,
         "image_url": "https://img.example/x.jpg", "event_time": t}
    if event_id is not None:
        d["event_id"] = event_id
    d.update(extra)
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


# ---- the reference: plain Python, no code shared with pipelines.recount -------------------------
def reference_count(lines, as_of=AS_OF):
    posts = collections.defaultdict(list)
    for raw in lines:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(parse_post_event(raw), PostEvent):  # the contract's validation
            continue
        t = dt.datetime.fromisoformat(obj["event_time"].replace("Z", "+00:00"))
        if t >= as_of:
            continue
        posts[obj["post_id"]].append((t, obj["event"] == "deleted", obj.get("event_id") or "",
                                      json.dumps(obj, ensure_ascii=False, separators=(",", ":")), obj))
    counts = collections.Counter()
    for evs in posts.values():
        winner = max(evs)[4]
        if winner["event"] != "published":
            continue
        keys = {normalize_tag(tag) for tag in extract_hashtags(winner["caption"]) if len(tag) <= 100}
        for k in keys:
            counts[k] += 1
    return dict(counts)


def run_exact(lines, as_of=AS_OF):
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        out = (p | beam.Create(lines) | recount.ExactCounts(as_of)
               | beam.MapTuple(lambda k, tally: (k, tally.count)))
        assert_that(out, equal_to(sorted(reference_count(lines, as_of).items())))


SCENARIO = [
    # duplicates: the same delivery twice (as in two archive files)
    line("published", "dup", "#Dup #beach", "2026-11-22T10:00:00Z", "e1"),
    line("published", "dup", "#Dup #beach", "2026-11-22T10:00:00Z", "e1"),
    # published then deleted → 0
    line("published", "del", "#gone #beach", "2026-11-22T10:00:00Z", "e2"),
    line("deleted", "del", "#gone #beach", "2026-11-22T11:00:00Z", "e3"),
    # re-publish after delete → counts once
    line("published", "rep", "#again", "2026-11-21T10:00:00Z", "e4"),
    line("deleted", "rep", "#again", "2026-11-21T11:00:00Z", "e5"),
    line("published", "rep", "#again", "2026-11-21T12:00:00Z", "e6"),
    # edit: the latest caption's tags
    line("published", "edit", "#old #kept", "2026-11-20T10:00:00Z", "e7"),
    line("published", "edit", "#new #kept", "2026-11-20T10:05:00Z", "e8"),
    # a late event: old event_time, listed last (arrived late): counts
    line("published", "late", "#beach", "2026-11-01T00:00:00Z", "e9"),
    # at/after as_of: not counted; a delete after as_of does not undo the base
    line("published", "future", "#tomorrow", "2026-11-23T00:00:00Z", "e10"),
    line("published", "kept", "#stays", "2026-11-22T23:59:59.999Z", "e11"),
    line("deleted", "kept", "#stays", "2026-11-23T08:00:00Z", "e12"),
    # same time: deleted beats published
    line("published", "tie", "#tie", "2026-11-22T09:00:00Z", "e13"),
    line("deleted", "tie", "#tie", "2026-11-22T09:00:00Z", "e14"),
    # case and width: one key; repeated in a post: once
    line("published", "c1", "#Love", "2026-11-22T01:00:00Z"),
    line("published", "c2", "#LOVE #love", "2026-11-22T02:00:00Z"),
    line("published", "c3", "#ｌｏｖｅ", "2026-11-22T03:00:00Z"),
    # garbage is rejected, not counted
    "not json",
    line("published", "bad", "#bad", "yesterday"),
]


def test_scenario_reference_is_what_we_think():
    assert reference_count(SCENARIO) == {
        "dup": 1, "beach": 2, "again": 1, "new": 1, "kept": 1, "stays": 1, "love": 3}


def test_recount_equals_reference_on_scenario():
    run_exact(SCENARIO)


def test_recount_is_independent_of_input_order():
    shuffled = SCENARIO[:]
    random.Random(7).shuffle(shuffled)
    run_exact(shuffled + SCENARIO[:4])  # and more duplicates


# ---- random event streams ---------------------------------------------------------------------
TAGS = ["love", "Love", "LOVE", "ｌｏｖｅ", "cat", "Cat", "dog", "straße", "STRASSE", "ÉTÉ", "été", "x_1"]

event_st = st.tuples(
    st.sampled_from(["published", "published", "deleted"]),
    st.sampled_from([f"p{i}" for i in range(8)]),
    st.lists(st.sampled_from(TAGS), max_size=4),
    st.integers(min_value=0, max_value=48),  # hours before as_of - 24 .. as_of + 24
    st.sampled_from([None, "a", "b"]),
)


def to_lines(events):
    out = []
    for kind, pid, tags, h, eid in events:
        t = (AS_OF - dt.timedelta(hours=24) + dt.timedelta(hours=h // 2, minutes=30 * (h % 2)))
        out.append(line(kind, pid, " ".join("#" + t_ for t_ in tags) + " hello",
                        t.strftime("%Y-%m-%dT%H:%M:%SZ"), eid))
    return out


@hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(event_st, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_recount_equals_reference_on_random_streams(events, rnd):
    lines = to_lines(events)
    lines += [rnd.choice(lines) for _ in range(len(lines) // 3)]  # duplicated deliveries
    rnd.shuffle(lines)
    run_exact(lines)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(event_st, min_size=1, max_size=12), st.sampled_from([f"p{i}" for i in range(8)]),
       st.randoms(use_true_random=False))
def test_latest_event_is_a_total_order(events, post_id, rnd):
    """Folding the packed events of ONE post (the combiner's view: the post_id is the key) in any
    order, over any split, gives the winner_order maximum."""
    parsed = [parse_post_event(l) for l in to_lines((k, post_id, tags, h, eid) for k, _, tags, h, eid in events)]
    expected = max(parsed, key=recount.winner_order)
    order = parsed[:]
    rnd.shuffle(order)
    fn = recount.LatestEventFn()
    cut = rnd.randint(0, len(order))
    accs = []
    for half in (order[:cut], order[cut:]):
        acc = fn.create_accumulator()
        for e in half:
            acc = fn.add_input(acc, recount.pack(e))
        accs.append(acc)
    assert recount.unpack(post_id, fn.extract_output(fn.merge_accumulators(accs))) == expected
    assert all(recount.unpack(e.post_id, recount.pack(e)) == e for e in parsed)
    # the same fold per bucket: {post_id: winner} accumulators, any split, other posts beside it
    by_bucket = recount.LatestPerPostFn()
    other = parse_post_event(line("published", "other", "#z", "2026-11-22T01:00:00Z", "o"))
    bucket_accs = []
    for half in (order[:cut] + [other], order[cut:]):
        acc = by_bucket.create_accumulator()
        for e in half:
            acc = by_bucket.add_input(acc, (e.post_id, recount.pack(e)))
        bucket_accs.append(acc)
    rnd.shuffle(bucket_accs)
    winners = by_bucket.extract_output(by_bucket.merge_accumulators(bucket_accs))
    assert set(winners) == {post_id, "other"}
    assert recount.unpack(post_id, winners[post_id]) == expected


def test_post_bucket_is_stable_and_spread():
    import zlib

    assert recount.post_bucket("p1", 256) == zlib.crc32(b"p1") % 256  # not the per-process salted hash()
    assert len({recount.post_bucket(f"p{i}", 256) for i in range(5000)}) == 256


def test_tie_on_time_kind_and_event_id_is_broken_by_the_line():
    a = parse_post_event(line("published", "x", "#a", "2026-11-22T10:00:00Z", "e"))
    b = parse_post_event(line("published", "x", "#b", "2026-11-22T10:00:00Z", "e"))
    winner = max([a, b], key=recount.winner_order)
    fn = recount.LatestEventFn()
    for first, second in ((a, b), (b, a)):
        acc = fn.add_input(fn.add_input(fn.create_accumulator(), recount.pack(first)), recount.pack(second))
        assert recount.unpack("x", acc) == winner
        assert recount.unpack("x", fn.merge_accumulators([recount.pack(second), None, recount.pack(first)])) == winner


# ---- pure helpers -----------------------------------------------------------------------------
def test_partition_day_and_files_before():
    paths = ["gs://b/a/dt=2026-11-21/x.jsonl", "/a/dt=2026-11-22/y.jsonl", "/a/dt=2026-11-23/z.jsonl",
             "/a/other/w.jsonl", "/a/dt=2026-13-01/bad.jsonl"]
    assert recount.partition_day(paths[0]) == dt.date(2026, 11, 21)
    assert recount.partition_day(paths[3]) is None
    assert recount.partition_day(paths[4]) is None
    assert recount.files_before(paths, AS_OF) == ["/a/dt=2026-11-22/y.jsonl", "gs://b/a/dt=2026-11-21/x.jsonl"]
    assert recount.files_before(paths, AS_OF, since=dt.date(2026, 11, 22)) == ["/a/dt=2026-11-22/y.jsonl"]


def test_as_of_time():
    assert recount.as_of_time("2026-11-23") == AS_OF
    assert recount.as_of_time(dt.date(2026, 11, 23)) == AS_OF
    with pytest.raises(ValueError):
        recount.as_of_time("23/11/2026")


def test_snapshot_row_compares_like_with_like():
    from hashtags.layout import Cell, encode_count, to_millis

    base_old = Cell(encode_count(10), to_millis(AS_OF - dt.timedelta(days=1)))
    hours = [Cell(encode_count(3), to_millis(AS_OF - dt.timedelta(hours=5))),  # before as_of
             Cell(encode_count(2), to_millis(AS_OF)),  # at as_of
             Cell(encode_count(1), to_millis(AS_OF + dt.timedelta(hours=3)))]
    snap = recount.snapshot_row([base_old], hours, to_millis(AS_OF))
    assert snap == recount.RowSnapshot(before=16, hours_from_as_of=3, base_as_of_ms=base_old.timestamp_ms)
    # exact base 12 → after = 12 + 3
    d = recount.tag_drift(recount.TagResult("t", 12, snap), to_millis(AS_OF))
    assert (d.before, d.after, d.diff, d.superseded) == (16, 15, 1, False)
    # a row with a NEWER base is not changed by this (older) recount
    newer = recount.snapshot_row([Cell(encode_count(7), to_millis(AS_OF + dt.timedelta(days=1)))], [],
                                 to_millis(AS_OF))
    d = recount.tag_drift(recount.TagResult("t", 99, newer), to_millis(AS_OF))
    assert (d.before, d.after, d.superseded) == (7, 7, True)
    # a tag the table never saw
    d = recount.tag_drift(recount.TagResult("t", 4, None), to_millis(AS_OF))
    assert (d.before, d.after) == (0, 4)


def test_build_recount_joins_snapshot_and_summarises(tmp_path):
    """The whole graph minus Bigtable: the snapshot comes from a Create, the summary file is read."""
    from hashtags.layout import to_millis

    summary = tmp_path / "summary.json"
    f = tmp_path / "dt=2026-11-22" / "a.jsonl"
    f.parent.mkdir()
    f.write_text("\n".join(SCENARIO) + "\n", encoding="utf-8")
    snap = [
        ("dup", recount.RowSnapshot(2, 0, None)),  # duplicate counted twice live → drift +1
        ("gone", recount.RowSnapshot(1, 0, None)),  # deleted post still counted → drift +1, base 0
        ("love", recount.RowSnapshot(5, 2, to_millis(AS_OF - dt.timedelta(days=1)))),  # 3 + 2 = 5: no drift
        ("orphan", recount.RowSnapshot(0, 0, None)),  # in the table, no count, no drift
    ]
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        out = recount.build_recount(p, files=[str(f)], as_of=AS_OF, summary_path=str(summary), bigtable=None,
                                    write=False, snapshot=p | "Snap" >> beam.Create(snap))
        assert_that(out["results"] | beam.Map(lambda r: (r.key, r.exact)),
                    equal_to(sorted({**reference_count(SCENARIO), "gone": 0, "orphan": 0}.items())))
    acc = DriftAccumulator.from_json(json.loads(summary.read_text()))
    assert acc.tags == 9
    assert [(t.key, t.before, t.after) for t in acc.worst()] == [
        ("beach", 0, 2), ("again", 0, 1), ("dup", 2, 1), ("gone", 1, 0), ("kept", 0, 1), ("new", 0, 1),
        ("stays", 0, 1)]
    assert (acc.drifted, acc.before_total, acc.after_total, acc.abs_diff_total) == (7, 8, 12, 8)
    assert (acc.over_counted, acc.under_counted) == (2, 5)


def test_drift_accumulator_is_what_the_combine_merges():
    rows = [TagDrift("a", 5, 5), TagDrift("b", 3, 1), TagDrift("c", 0, 2)]
    one = DriftAccumulator()
    for r in rows:
        one.add(r)
    two = DriftAccumulator().add(rows[0]).merge(DriftAccumulator().add(rows[1]).add(rows[2]))
    assert one.to_json() == two.to_json()
