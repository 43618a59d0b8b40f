"""The recount's composites in-process (TestPipeline + assert_that, as Beam's examples/complete/game
tests): each returns its output AND its ``counts`` for the report, and here they are wired as
``pipelines.recount.build_recount`` wires them for a full rebuild, minus Bigtable (no prior rows:
the join's ``row`` and ``day_prior`` are empty). Expected values are counted by hand from
tests/unit/test_recount.py's SCENARIO (its plain-Python reference is checked there)."""
from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from hashtags import day_cells, planning
from hashtags import post_state as ps
from pipelines.recount_steps import COUNTS
from pipelines.recount_steps.bases import Bases
from pipelines.recount_steps.changes import Changes, SumTagDeltas
from pipelines.recount_steps.days import DayAccounts, DayCellsOfTags, SumDayDeltas
from pipelines.recount_steps.read import Winners
from pipelines.related import RelatedTags
from tests.unit.test_recount import AS_OF, SCENARIO, archive_files, reference_count

PLAN = planning.plan_full_rebuild(AS_OF.date())


def summed(counts, label: str):
    return counts | f"Sum{label}" >> beam.CombinePerKey(sum)


def test_the_full_rebuild_composites_return_their_outputs_and_counts(tmp_path):
    want = reference_count(SCENARIO)  # {"dup": 1, "beach": 2, "again": 1, "new": 1, "kept": 1, "stays": 1, "love": 3}
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        read = p | beam.Create(archive_files(tmp_path, SCENARIO)) | "Read" >> Winners(AS_OF)
        changed = read["winners"] | "Changes" >> Changes(ps.Priors(), fresh=True)
        deltas = changed["changes"] | "Deltas" >> SumTagDeltas()
        joined = ({"delta": deltas, "row": p | "NoRows" >> beam.Create([]),
                   "day_delta": changed["changes"] | SumDayDeltas(day_cells.horizon(PLAN.as_of)),
                   "accounts": read["winners"] | DayAccounts(day_cells.account_days(PLAN)),
                   "day_prior": p | "NoDayPriors" >> beam.Create([])}
                  | beam.CoGroupByKey())
        bases = joined | "Bases" >> Bases(AS_OF, fresh=True, list_limit=5)
        days = joined | "Days" >> DayCellsOfTags(fresh=True, horizon=day_cells.horizon(PLAN.as_of),
                                                 account_days=day_cells.account_days(PLAN))
        related = read["winners"] | "Related" >> RelatedTags(PLAN.as_of)

        # 20 lines in 2 files: 2 rejected (not JSON, a bad time), 2 at/after M, 16 before M
        assert_that(summed(read[COUNTS], "Read"), equal_to([
            ("archive_files", 2), ("events_read", 18), ("events_rejected", 2), ("events_before_as_of", 16)]),
            label="ReadCounts")
        # 10 posts before M (future's only event is at M), every one a change from empty state
        assert_that(summed(changed[COUNTS], "Changes"), equal_to([("posts", 10), ("posts_changed", 10)]),
                    label="ChangeCounts")
        assert_that(bases["results"] | beam.Map(lambda r: (r.key, r.exact, r.snapshot)),
                    equal_to([(k, n, None) for k, n in want.items()]), label="Results")
        assert_that(bases["drift"] | beam.Map(lambda j: {k: len(v) if k == "worst" else v for k, v in json.loads(j).items()}),
                    equal_to([{"list_limit": 5, "worst": 5, "tags": 7, "drifted": 7, "superseded": 0, "before_total": 0,
                               "after_total": 10, "abs_diff_total": 10, "over_counted": 0, "under_counted": 7}]),
                    label="Drift")
        # published winners by (tag, event day): dup, beach, stays, love on the 22nd; again the 21st;
        # new, kept the 20th; beach on 11-01 (late): 8 post cells, and one account cell each
        assert_that(summed(days[COUNTS], "Days"), equal_to([("day_post_cells", 8), ("day_account_cells", 8)]),
                    label="DayCounts")
        assert_that(days["days"] | beam.Map(lambda c: (c.key, sum(c.posts.values()))),
                    equal_to([("dup", 1), ("beach", 2), ("again", 1), ("new", 1), ("kept", 1), ("stays", 1),
                              ("love", 3)]), label="DayPosts")
        # the related window [M - 7 d, M): every published winner but the late one (11-01): 7 posts,
        # and each of their 7 tags gets a list (empty: no pair reaches the support)
        assert_that(summed(related[COUNTS], "Related"), equal_to([("related_posts", 7)]), label="RelatedCounts")
        assert_that(related["related"], equal_to([(k, []) for k in want]), label="RelatedLists")


def test_a_dry_full_rebuild_counts_the_same(tmp_path):
    """Changes counts one lookup-free change per post whatever the input order (combiner lifting
    sends one candidate per post and bundle through the shuffle)."""
    lines = list(reversed(SCENARIO)) + SCENARIO[:4]  # duplicates across the files
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        read = p | beam.Create(archive_files(tmp_path, lines)) | Winners(AS_OF)
        changed = read["winners"] | Changes(ps.Priors(), fresh=True)
        assert_that(summed(changed[COUNTS], "Changes"), equal_to([("posts", 10), ("posts_changed", 10)]))
        assert_that(changed["changes"] | beam.Map(lambda c: (c.post_id, c.old, not c.new.published)),
                    equal_to([(pid, None, pid in ("del", "tie")) for pid in
                              ("dup", "del", "rep", "edit", "late", "kept", "tie", "c1", "c2", "c3")]),
                    label="Changed")
