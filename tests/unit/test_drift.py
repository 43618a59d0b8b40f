"""The drift report: pure computation and its JSON/Markdown rendering."""
from __future__ import annotations

import json
import random

from hypothesis import given, settings as hsettings, strategies as st

from pipelines import drift
from pipelines.drift import DriftAccumulator, TagDrift

ROWS = [
    TagDrift("love", 105, 100),  # over-counted (duplicate deliveries)
    TagDrift("cat", 40, 42),  # under-counted (events too late for the live count)
    TagDrift("dog", 7, 7),
    TagDrift("gone", 3, 0),
    TagDrift("a|b`c", 0, 1),  # needs escaping in Markdown
    TagDrift("old", 9, 9, superseded=True),
]


def report(threshold=None, rows=ROWS, **kw):
    return drift.build_report(drift.summarize(rows, **kw), as_of="2026-11-23T00:00:00Z", table="hashtags",
                              dry_run=False, threshold=threshold)


def test_totals_fraction_and_worst():
    r = report()
    assert (r["tags"], r["tags_drifted"], r["tags_superseded"]) == (6, 4, 1)
    assert r["fraction_drifted"] == 4 / 6
    assert (r["total_before"], r["total_after"], r["total_diff"], r["abs_diff_total"]) == (164, 159, 5, 11)
    assert (r["tags_over_counted"], r["tags_under_counted"]) == (2, 2)
    assert r["drift_ratio"] == 11 / 159
    assert [(t["tag"], t["before"], t["after"], t["diff"]) for t in r["drifted_tags"]] == [
        ("love", 105, 100, 5), ("gone", 3, 0, 3), ("cat", 40, 42, -2), ("a|b`c", 0, 1, -1)]
    assert r["exceeds_threshold"] is False and r["threshold"] is None


def test_threshold():
    assert report(threshold=0.05)["exceeds_threshold"] is True  # 6.9 % > 5 %
    assert report(threshold=0.07)["exceeds_threshold"] is False
    assert report(threshold=0.0, rows=[TagDrift("x", 1, 1)])["exceeds_threshold"] is False
    assert report(threshold=0.0, rows=[])["drift_ratio"] == 0.0


def test_list_limit_keeps_the_worst_with_ties_by_key():
    rows = [TagDrift(f"t{i:02d}", 10 + (i % 3), 10) for i in range(30)]
    r = report(rows=rows, list_limit=5)
    assert [t["tag"] for t in r["drifted_tags"]] == ["t02", "t05", "t08", "t11", "t14"]
    assert r["tags_drifted"] == 20


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.booleans()), max_size=60),
       st.integers(1, 8), st.randoms(use_true_random=False))
def test_merge_in_any_split_equals_one_pass(values, limit, rnd):
    rows = [TagDrift(f"k{i}", b, a, s) for i, (b, a, s) in enumerate(values)]
    one = drift.summarize(rows, list_limit=limit)
    rnd.shuffle(rows)
    cut = rnd.randint(0, len(rows))
    merged = drift.summarize(rows[:cut], list_limit=limit).merge(drift.summarize(rows[cut:], list_limit=limit))
    assert merged.to_json() == one.to_json()
    # and the JSON round trip the job uses
    assert DriftAccumulator.from_json(json.loads(json.dumps(one.to_json()))).to_json() == one.to_json()


def test_markdown_and_summary_line():
    r = report(threshold=0.05)
    md = drift.render_markdown(r, worst_n=2)
    assert md.startswith("# Hashtag recount drift report — as of 2026-11-23T00:00:00Z\n")
    assert "| tags drifted | 4 (66.67%) |" in md
    assert "| threshold | 5.0000% (**EXCEEDED**) |" in md
    assert "| love | 105 | 100 | +5 |" in md and "| gone | 3 | 0 | +3 |" in md
    assert "| cat |" not in md  # only the worst 2
    md_all = drift.render_markdown(r, worst_n=10)
    assert "| a\\|b\\`c | 0 | 1 | -1 |" in md_all
    line = drift.summary_line(r)
    assert line == ("drift as_of=2026-11-23T00:00:00Z tags=6 drifted=4 (66.67%) total 164 -> 159 "
                    "(|diff| 11, ratio 6.9182%) OVER THRESHOLD 5.0000%; worst: love +5, gone +3, cat -2")
    assert json.loads(drift.render_json(r)) == r


def test_no_drift_renders():
    r = report(rows=[TagDrift("x", 1, 1)])
    assert "No tag drifted." in drift.render_markdown(r)
    assert drift.summary_line(r).endswith("worst: none")
