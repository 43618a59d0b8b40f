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

from hashtags import extract_hashtags, normalize_tag, planning
from hashtags import post_state as ps
from hashtags.layout import Cell, encode_count, to_millis
from hashtags.messages import PostEvent, parse_post_event
from pipelines.recount_steps import bases, read, rows
from pipelines.recount_steps.changes import Changes, SumTagDeltas
from pipelines.drift import DriftAccumulator, TagDrift
from pipelines.transforms import Tally

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


def archive_files(tmp_path, lines) -> list[str]:
    """``lines`` written to two archive files of one arrival day (the same post's events may sit in
    different files); their paths."""
    paths = []
    for i in range(2):
        f = tmp_path / f"arrived=2026-11-22/part-{i}.jsonl"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(l + "\n" for l in lines[i::2]), encoding="utf-8")
        paths.append(str(f))
    return paths


def run_exact(lines, tmp_path, as_of=AS_OF):
    """The job's counting steps (Winners → Changes from empty state → SumTagDeltas, FnApiRunner) over
    archive files holding ``lines``, against the reference."""
    paths = archive_files(tmp_path, lines)
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        winners = (p | beam.Create(paths) | read.Winners(as_of))["winners"]
        out = ((winners | Changes(ps.Priors(), fresh=True))["changes"] | SumTagDeltas()
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


def test_recount_equals_reference_on_scenario(tmp_path):
    run_exact(SCENARIO, tmp_path)


def test_recount_is_independent_of_input_order(tmp_path):
    shuffled = SCENARIO[:]
    random.Random(7).shuffle(shuffled)
    run_exact(shuffled + SCENARIO[:4], tmp_path)  # and more duplicates


# ---- random event streams ---------------------------------------------------------------------
TAGS = ["love", "Love", "LOVE", "ｌｏｖｅ", "cat", "Cat", "dog", "straße", "STRASSE", "ÉTÉ", "été", "x_1"]

event_st = st.tuples(
    st.sampled_from(["published", "published", "deleted"]),
    st.sampled_from([f"p{i}" for i in range(8)]),
    st.lists(st.sampled_from(TAGS), max_size=4),
    st.integers(min_value=0, max_value=48),  # hours before as_of - 24 .. as_of + 24
    st.booleans(),  # with an event_id
)


def to_lines(events):
    """Distinct events get distinct event ids (or none): a tie up to the event id is then a
    duplicate delivery, where every tie-break agrees (the digest is the job's, not the reference's)."""
    out = []
    for i, (kind, pid, tags, h, has_id) in enumerate(events):
        t = (AS_OF - dt.timedelta(hours=24) + dt.timedelta(hours=h // 2, minutes=30 * (h % 2), seconds=i))
        out.append(line(kind, pid, " ".join("#" + t_ for t_ in tags) + " hello",
                        t.strftime("%Y-%m-%dT%H:%M:%SZ"), f"e{i}" if has_id else None))
    return out


@hsettings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(event_st, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_recount_equals_reference_on_random_streams(tmp_path_factory, events, rnd):
    lines = to_lines(events)
    lines += [rnd.choice(lines) for _ in range(len(lines) // 3)]  # duplicated deliveries
    rnd.shuffle(lines)
    run_exact(lines, tmp_path_factory.mktemp("r"))


def fold(candidates_per_split):
    """LatestFn over several splits (each a list of one post's candidates), merged."""
    fn = read.LatestFn()
    accs = []
    for split in candidates_per_split:
        acc = fn.create_accumulator()
        for c in split:
            acc = fn.add_input(acc, c)
        accs.append(acc)
    return fn.extract_output(fn.merge_accumulators(accs))


@hsettings(max_examples=300, deadline=None)
@given(st.lists(event_st, min_size=1, max_size=12), st.sampled_from([f"p{i}" for i in range(8)]),
       st.randoms(use_true_random=False))
def test_the_winner_is_the_order_maximum_in_any_split(events, post_id, rnd):
    """Folding ONE post's candidates in any order over any split gives the ``order_of`` maximum,
    which is the reference's (time, delete beats publish, event id)."""
    parsed = [parse_post_event(l) for l in to_lines((k, post_id, tags, h, i) for k, _, tags, h, i in events)]
    expected = max(parsed, key=lambda e: (e.event_time, e.event == "deleted", e.event_id or ""))
    cands = [ps.candidate(e) for e in parsed]
    rnd.shuffle(cands)
    cut = rnd.randint(0, len(cands))
    winner = fold([cands[:cut], cands[cut:]])
    assert winner == ps.candidate(expected)
    assert ps.state_of(post_id, winner).tags == (() if expected.event == "deleted" else
                                                 tuple(sorted(k for k, _ in expected.tags())))


def test_full_tie_is_broken_by_the_digest_the_same_way_everywhere():
    a = parse_post_event(line("published", "x", "#a", "2026-11-22T10:00:00Z", "e"))
    b = parse_post_event(line("published", "x", "#b", "2026-11-22T10:00:00Z", "e"))
    ca, cb = ps.candidate(a), ps.candidate(b)
    assert ca[:3] == cb[:3] and ca[3] != cb[3]
    winner = ps.later(ca, cb)
    assert winner is ps.later(cb, ca)
    assert fold([[ca], [cb]]) == winner
    assert fold([[cb, ca]]) == winner
    # and against a stored state: the loser never replaces the winner, the winner replaces the loser
    loser = cb if winner is ca else ca
    assert not ps.changed(ps.state_of("x", winner), ps.state_of("x", loser))
    assert ps.changed(ps.state_of("x", loser), ps.state_of("x", winner))


def test_a_candidate_carries_tag_keys_not_the_caption():
    e = parse_post_event(line("published", "x", "#Love #LOVE #cat " + "words " * 200, "2026-11-22T10:00:00Z", "e"))
    c = ps.candidate(e)
    assert c[ps.CANDIDATE_FIELDS.index("tags")] == ("cat", "love")
    assert len(repr(c)) < 150  # what the shuffle carries per post: keys, never the 1.2 kB caption


# ---- files of a plan --------------------------------------------------------------------------
def test_file_patterns_and_in_plan():
    nightly = planning.RunPlan("nightly", dt.date(2026, 11, 23), dt.date(2026, 11, 21), dt.date(2026, 11, 22))
    assert read.file_patterns("gs://b/a/", nightly) == [
        "gs://b/a/arrived=2026-11-21/*.jsonl", "gs://b/a/arrived=2026-11-21/*.jsonl.gz",
        "gs://b/a/arrived=2026-11-22/*.jsonl", "gs://b/a/arrived=2026-11-22/*.jsonl.gz"]
    full = planning.plan_full_rebuild(dt.date(2026, 11, 23))
    assert read.file_patterns("/a", full) == ["/a/arrived=*/*.jsonl", "/a/arrived=*/*.jsonl.gz"]
    assert read.in_plan("/a/arrived=2026-11-22/x.jsonl.gz", full)
    assert not read.in_plan("/a/arrived=2026-11-23/x.jsonl", full)  # arrived on/after as_of: next night
    assert not read.in_plan("/a/arrived=2026-11-20/x.jsonl", nightly)
    assert not read.in_plan("/a/arrived=2026-11-22/x.json", nightly)
    assert read.in_plan("/a/arrived=2026-11-21/x.jsonl", nightly)


def test_as_of_time():
    assert read.as_of_time("2026-11-23") == AS_OF
    assert read.as_of_time(dt.date(2026, 11, 23)) == AS_OF
    with pytest.raises(ValueError):
        read.as_of_time("23/11/2026")


# ---- rows, bases, drift (pure) ----------------------------------------------------------------
def cell(n, t):
    return Cell(encode_count(n), to_millis(t))


def test_snapshot_row_reads_the_recorded_base_and_the_pending_hours():
    day = dt.timedelta(days=1)
    recorded = ps.Priors(AS_OF.date() - day, frozenset({to_millis(AS_OF - 2 * day), to_millis(AS_OF - day)}))
    bases = [cell(10, AS_OF - 2 * day), cell(12, AS_OF - day)]
    hours = [cell(5, AS_OF - 3 * day),  # before the base before M: not shown, not pending
             cell(3, AS_OF - dt.timedelta(hours=5)),  # in [base, M): pending
             cell(2, AS_OF), cell(1, AS_OF + dt.timedelta(hours=3))]  # at/after M
    snap = rows.snapshot_row(bases, hours, to_millis(AS_OF), recorded)
    assert snap == rows.RowSnapshot(shown=18, base_before=12, hours_pending=True, hours_from_as_of=3,
                                       newest_base_ms=to_millis(AS_OF - day))
    # a partial run's base at M is not "before M": the rerun starts from the same base
    again = rows.snapshot_row(bases + [cell(20, AS_OF)], hours, to_millis(AS_OF), recorded)
    assert (again.shown, again.base_before, again.hours_pending, again.unapplied_base) == (23, 12, True, False)
    quiet = rows.snapshot_row(bases, hours[:1] + hours[2:], to_millis(AS_OF), recorded)
    assert not quiet.hours_pending and quiet.base_before == 12
    fresh_row = rows.snapshot_row([], [cell(4, AS_OF - day)], to_millis(AS_OF), recorded)
    assert (fresh_row.shown, fresh_row.base_before, fresh_row.hours_pending) == (4, 0, True)
    # the night before M failed after writing its base (no record): the run reads the base of two
    # nights ago, counts the hours since as pending, and supersedes the failed base
    failed = ps.Priors(AS_OF.date() - 2 * day, frozenset({to_millis(AS_OF - 2 * day)}))
    after_failure = rows.snapshot_row(bases, hours, to_millis(AS_OF), failed)
    assert (after_failure.shown, after_failure.base_before, after_failure.hours_pending,
            after_failure.unapplied_base) == (18, 10, True, True)


def test_tag_result_touches_tags_with_deltas_or_pending_hours():
    tally = lambda n: Tally(n, None)  # noqa: E731
    pending = rows.RowSnapshot(shown=9, base_before=7, hours_pending=True, hours_from_as_of=1, newest_base_ms=1)
    quiet = pending._replace(hours_pending=False)
    assert bases.tag_result("t", [tally(2)], [quiet], fresh=False) == bases.TagResult("t", 9, quiet)
    assert bases.tag_result("t", [], [pending], fresh=False) == bases.TagResult("t", 7, pending)  # reset
    assert bases.tag_result("t", [], [quiet], fresh=False) is None  # untouched: no write, no report
    superseded = quiet._replace(unapplied_base=True)  # a failed run's base: rewritten from the applied one
    assert bases.tag_result("t", [], [superseded], fresh=False) == bases.TagResult("t", 7, superseded)
    assert bases.tag_result("t", [tally(1), tally(-1)], [], fresh=False) == bases.TagResult("t", 0, None)
    # a full rebuild ignores the old base and touches every row with count cells
    assert bases.tag_result("t", [tally(2)], [quiet], fresh=True) == bases.TagResult("t", 2, quiet)
    assert bases.tag_result("t", [], [quiet], fresh=True) == bases.TagResult("t", 0, quiet)
    assert bases.tag_result("t", [], [], fresh=True) is None


def test_tag_drift_compares_like_with_like():
    m = to_millis(AS_OF)
    snap = rows.RowSnapshot(shown=16, base_before=10, hours_pending=True, hours_from_as_of=3,
                               newest_base_ms=m - 1)
    d = bases.tag_drift(bases.TagResult("t", 12, snap), m)
    assert (d.before, d.after, d.diff, d.superseded) == (16, 15, 1, False)
    negative = snap._replace(shown=0, hours_from_as_of=-2)
    assert bases.tag_drift(bases.TagResult("t", 1, negative), m).after == 0  # the page clamps at 0
    newer = snap._replace(shown=7, newest_base_ms=m + 1)
    d = bases.tag_drift(bases.TagResult("t", 99, newer), m)
    assert (d.before, d.after, d.superseded) == (7, 7, True)
    d = bases.tag_drift(bases.TagResult("t", 4, None), m)
    assert (d.before, d.after) == (0, 4)


def test_drift_accumulator_is_what_the_combine_merges():
    rows = [TagDrift("a", 5, 5), TagDrift("b", 3, 1), TagDrift("c", 0, 2)]
    one = DriftAccumulator()
    for r in rows:
        one.add(r)
    two = DriftAccumulator().add(rows[0]).merge(DriftAccumulator().add(rows[1]).add(rows[2]))
    assert one.to_json() == two.to_json()


def test_key_ranges_cover_the_key_space_once():
    from hashtag_store.scan import KeyRange, ranges_from_splits

    ranges = ranges_from_splits([b"m", b"c", b"m", b"", b"\xe3"])
    assert ranges == [KeyRange(b"", b"c"), KeyRange(b"c", b"m"), KeyRange(b"m", b"\xe3"), KeyRange(b"\xe3", b"")]
    for key in (b"", b"a", b"c", b"love", b"m", b"zz", "日本".encode()):
        assert sum(1 for r in ranges if r.start <= key and (not r.end or key < r.end)) == 1
