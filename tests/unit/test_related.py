"""Related tags (hashtags/related.py, pipelines/related.py): the Beam branch (FnApiRunner via
TestPipeline, through the job's own Winners over archive files) on a scenario with exact numbers —
support, ties, the top-10 cut, the latest winner per post (edits, deletes), the window's bounds,
hidden tags —, against a plain-Python reference on random posts, and the pure pieces."""
from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import random

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings as hsettings, strategies as st

from hashtags import archive, layout, planning, related
from hashtags.layout import RelatedTag
from hashtags.settings import MAX_TAGS_PER_POST, RELATED_MIN_POSTS
from pipelines.recount_steps.read import Winners, file_patterns, related_plan
from pipelines.related import RelatedTags, TopRelatedFn

UTC = dt.timezone.utc
M = dt.date(2031, 3, 23)
AS_OF = layout.midnight_utc(M)


def line(event, post_id, tags, t, user="u"):
    return json.dumps({"event": event, "post_id": post_id, "user_id": user,
                       "caption": " ".join("#" + x for x in tags),
                       "image_url": None if event == "deleted" else "https://img.example/x.jpg", "event_time": t})


def posts(prefix, tags, n, t="2031-03-20T10:00:00Z"):
    return [line("published", f"{prefix}{i}", tags, t) for i in range(n)]


SCENARIO = [
    *posts("abc", ["a", "b", "c"], 3), *posts("ab", ["a", "B"], 1),  # ab 4, ac 3, bc 3
    *posts("ad", ["a", "d"], 2),  # under the support
    *posts("ae", ["a", "e"], 3),
    line("published", "ae0", ["x"], "2031-03-21T10:00:00Z"),  # an edit: ae0's winner has only #x
    *posts("af", ["a", "f"], 3),
    line("deleted", "af0", ["a", "f"], "2031-03-21T10:00:00Z"),  # a delete: af0 counts nowhere
    *posts("ag", ["a", "g"], 2), line("published", "ag-old", ["a", "g"], "2031-03-15T23:59:59Z"),  # before the window
    line("published", "ag-new", ["a", "g"], "2031-03-23T00:00:00Z"),  # at M: not yet
    *posts("ah", ["a", "h"], 5),  # h is hidden: never related, its own entry empty
    *[x for i in range(1, 13) for x in posts(f"t{i:02}-", ["t", f"r{i:02}"], 3)],  # 12 tied: the first 10 by tag
    line("published", "edge", ["a", "b"], "2031-03-16T00:00:00Z"),  # the window's first instant: counts
]


def files_of(tmp_path, lines):
    paths = []
    for i in range(3):
        f = tmp_path / f"arrived=2031-03-2{i}/part.jsonl"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(x + "\n" for x in lines[i::3]), encoding="utf-8")
        paths.append(str(f))
    return paths


def test_scenario_exact_lists(tmp_path):
    r = [RelatedTag(f"r{i:02}", 3) for i in range(1, 11)]
    want = {
        "a": [RelatedTag("b", 5), RelatedTag("c", 3)], "b": [RelatedTag("a", 5), RelatedTag("c", 3)],
        "c": [RelatedTag("a", 3), RelatedTag("b", 3)],
        "d": [], "e": [], "f": [], "g": [], "x": [], "h": [],
        "t": r, **{f"r{i:02}": [RelatedTag("t", 3)] for i in range(1, 13)},
    }
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        out = (((p | beam.Create(files_of(tmp_path, SCENARIO)) | Winners(AS_OF))["winners"]
                | RelatedTags(M, frozenset({"h"})))["related"]
               | beam.MapTuple(lambda key, cands: (key, related.to_related(cands))))
        assert_that(out, equal_to(sorted(want.items())))


def test_without_hidden_tags_h_leads(tmp_path):
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        out = (((p | beam.Create(files_of(tmp_path, SCENARIO)) | Winners(AS_OF))["winners"]
                | RelatedTags(M))["related"] | beam.Filter(lambda kv: kv[0] in ("a", "h")))
        assert_that(out, equal_to([("a", [(5, "b"), (5, "h"), (3, "c")]), ("h", [(5, "a")])]))


# ---- random posts against a plain-Python reference ---------------------------------------------
def reference(lines, hidden, as_of=AS_OF):
    latest = {}
    for raw in lines:
        o = json.loads(raw)
        t = dt.datetime.fromisoformat(o["event_time"].replace("Z", "+00:00"))
        if t < as_of and (o["post_id"] not in latest or (t, o["event"] == "deleted") > latest[o["post_id"]][0]):
            latest[o["post_id"]] = ((t, o["event"] == "deleted"), o)
    pairs, seen = collections.Counter(), set()
    for (t, deleted), o in latest.values():
        if deleted or t < as_of - dt.timedelta(days=7):
            continue
        tags = {x[1:].lower() for x in o["caption"].split()}
        seen |= tags
        for a, b in itertools.permutations(sorted(tags - hidden), 2):
            pairs[(a, b)] += 1
    out = {}
    for tag in seen:
        cands = [(n, b) for (a, b), n in pairs.items() if a == tag and n >= RELATED_MIN_POSTS and tag not in hidden]
        out[tag] = [RelatedTag(b, n) for n, b in sorted(cands, key=lambda c: (-c[0], c[1]))[:10]]
    return out


def test_random_posts_equal_the_reference(tmp_path):
    rnd = random.Random(5)
    tags = [f"k{i}" for i in range(14)]
    lines = []
    for i in range(400):
        t = AS_OF - dt.timedelta(minutes=rnd.randrange(10, 13 * 24 * 60))  # some before the window
        lines.append(line("published", f"p{i}", rnd.sample(tags, rnd.randint(1, 5)), t.strftime("%Y-%m-%dT%H:%M:%SZ")))
        if rnd.random() < 0.2:  # a delete or an edit, later (some at/after M: not counted)
            later = (t + dt.timedelta(minutes=rnd.randrange(1, 60))).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(line(rnd.choice(["deleted", "published"]), f"p{i}", rnd.sample(tags, 2), later))
    hidden = frozenset({"k3"})
    want = reference(lines, hidden)
    assert sum(len(v) for v in want.values()) > 50 and want["k3"] == []
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        out = (((p | beam.Create(files_of(tmp_path, lines)) | Winners(AS_OF))["winners"]
                | RelatedTags(M, hidden))["related"] | beam.MapTuple(lambda key, cands: (key, related.to_related(cands))))
        assert_that(out, equal_to(sorted(want.items())))


# ---- pure pieces ---------------------------------------------------------------------------------
def test_window_and_its_read_plan():
    w = related.window(M)
    assert w == related.Window(dt.date(2031, 3, 16), dt.date(2031, 3, 22),
                               dt.datetime(2031, 3, 16, tzinfo=UTC), AS_OF)
    nightly = planning.plan_nightly(M, planning.LastRun(dt.date(2031, 3, 22), dt.date(2031, 3, 21)))
    full = planning.plan_full_rebuild(M)
    for plan in (nightly, full):
        rp = related_plan(plan)
        assert (rp.arrived_from, rp.arrived_to, rp.as_of) == (dt.date(2031, 3, 16), dt.date(2031, 3, 22), M)
        assert file_patterns("/a", rp) == [
            x for i in range(16, 23) for x in archive.partition_glob("/a", dt.date(2031, 3, i))]


def test_pairs_per_post_are_bounded():
    tags = tuple(sorted(f"t{i:02}" for i in range(MAX_TAGS_PER_POST)))
    pairs = list(related.tag_pairs(tags))
    assert len(pairs) == 435 == len(set(pairs)) and all(a < b for a, b in pairs)
    assert related.post_tags(["b", "a", "h", "a"], frozenset({"h"})) == related.PostTags(("a", "b"), ("h",))
    assert list(related.supported(("a", "b"), 2)) == []
    assert list(related.supported(("a", "b"), 3)) == [("a", (3, "b")), ("b", (3, "a"))]


candidates_st = st.lists(st.tuples(st.integers(3, 8), st.sampled_from([f"t{i}" for i in range(30)])),
                         unique_by=lambda c: c[1], max_size=40)


@hsettings(max_examples=60, deadline=None)
@given(candidates_st, st.randoms(use_true_random=False))
def test_top_fn_is_the_best_ten_however_it_is_split(cands, rnd):
    fn = TopRelatedFn()
    want = sorted(cands, key=lambda c: (-c[0], c[1]))[:10]
    accs = []
    for c in cands + [None] * 3:
        if not accs or rnd.random() < 0.3:
            accs.append(fn.create_accumulator())
        accs[-1] = fn.add_input(accs[-1], c)
    rnd.shuffle(accs)
    assert fn.extract_output(fn.merge_accumulators(accs)) == want
    assert fn.extract_output(fn.create_accumulator()) == []


def test_the_branch_combines_before_the_shuffle():
    """The pair counts and the top lists are CombinePerKey (lifted), not GroupByKey + Python."""
    p = beam.Pipeline()
    _ = p | beam.Create([]) | "Related" >> RelatedTags(M)
    kinds = {}

    class V(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            kinds[node.full_label] = type(node.transform).__name__

        def visit_transform(self, node):
            kinds[node.full_label] = type(node.transform).__name__

    p.visit(V())
    assert kinds["Related/PostsPerPair"] == kinds["Related/TopPerTag"] == "CombinePerKey"
