"""The reconciliation job's graph (DESIGN.md "Reconciliation (incremental)"): the archived events of
some ARRIVAL days → per-post winners → changes against the per-post state → per-tag deltas → the
exact ``counts:base`` at M, the new post states at M, and the drift report. The steps are modules of
``pipelines/recount_steps/`` (one a step, named below); this module wires them: ``build_recount(p,
config)`` with a :class:`RecountConfig` that the launcher (``pipelines/recount_launch.py``) resolved
from a ``hashtags.planning.JobConfig`` (plans the run, creates tables locally, launches the job; the
job reports and records itself, 8). ``pipelines/recount_main.py`` is the thin entry file.

For ``as_of`` = M (a UTC midnight) and the arrival days of the plan:

1. **Files** (``recount_steps.read``): the plan's ``arrived=YYYY-MM-DD`` patterns (``hashtags.archive.partition_glob``; the
   whole archive for a full rebuild) are matched ON THE WORKERS (``fileio.MatchAll``), filtered to
   the plan's days, spread (``Reshuffle``) and read one file per unit of work, fused with the parse
   (the streaming job's validation: ``hashtags.messages.parse_post_event_fields``, no future check).
2. **Winners** (``read``): per post, the latest event with event time < M (``hashtags.post_state.later``, THE
   order). The parse extracts each event's distinct tag keys, so a candidate is the order key, the
   user_id and the keys (never the caption); ``CombinePerKey`` by post_id holds ONE candidate per
   post (combiner lifting sends at most one per post and bundle through the shuffle). The parse
   also emits every event's tag keys: with the replaced states' tags, the tags the night touched.
3. **Changes** (``changes``): each winner against the post's state as the RECORDED runs applied it
   (``hashtags.post_state.Priors``: the newest cell written at a recorded run's midnight, up to the
   last recorded run before M; ``BatchElements`` → one multi-key ``ReadRows`` per batch,
   ``hashtag_store.post_state.PostStateReader``); a full rebuild starts from empty state and skips
   the lookups. A post changes when its winner is later than that state.
4. **Deltas** (``changes``): −1 for each tag of the old winner if it was published, +1 for each of the new one's
   (``hashtags.post_state.tag_deltas``; tags by the shared rule ``PostEvent.tags``), summed per tag
   by the streaming job's own combiner (``pipelines.transforms.TallyFn``).
5. **Rows** (``rows``): a nightly reads the rows of the touched tags and of the tags with hour cells since the
   day before its last recorded run (keys only, ``hashtag_store.scan.CountRowsReader.pending_keys``),
   by batched multi-key point reads (``hashtag_store.scan.TagRowsReader``) → :class:`RowSnapshot`;
   never every row. A full rebuild reads every row (key ranges in parallel): it resets them all.
6. **Bases** (``bases``): ``base@M = the recorded base + Σ deltas`` for every tag with a delta, every tag whose
   row has hour cells in [that base, M) (a streaming over-count is reset) and every tag whose newest
   base before M is a failed run's (superseded); a full rebuild
   writes Σ deltas for every counted tag and 0 for every other row with count cells. The drift
   report covers exactly these tags (shown vs exact). The bases wait behind the join
   (``CoGroupByKey``, a barrier), so the rows are read before any base is written.
7. **States** (``changes``): the changed posts' new states at M.
7b. **Days** (``days``) (the rule: hashtags/day_cells.py): ``days:p.<day>`` = the row's ``p.<day>`` as the
   recorded runs left it (read with the rows of step 5) + the changes' per-(tag, event day) deltas;
   ``days:a.<day>`` = distinct ``user_id`` of the published winners per (tag, event day), for the
   run's arrival days (with the nightly's one-day overlap, day X's value comes from the run that
   read partitions X and X+1: the run at X+2); both within the horizon (28 days), behind the same
   join as the bases.
7c. **Related tags** (the rule: hashtags/related.py; the graph: pipelines/related.py): a second,
   bounded read of the arrival days [M − 7 d, M − 1 d] (whatever the mode: never all history)
   through the same ``Winners`` → ``meta:related`` at M for every tag seen, without the hidden tags
   (``hidden``, read by the launcher from the tags' ``meta:flags``).
8. **Report, then record** (``report``) (the job's LAST step, :class:`FinishRunFn`): behind ``WaitOn`` of every
   Bigtable write, one element writes ``<report>/drift-<as_of>.json`` and ``.md`` (the drift
   accumulator and the run's in-graph counts as side inputs) and then, unless a dry run, the run
   record. So the job reports and records itself on any runner: a Flex Template launcher only
   builds and submits the graph (it cannot wait for the job), and a job that failed in a write
   leaves neither a report nor a record.

Every read is "as the recorded runs applied it" and every write a SetCell at M, so a rerun computes
and writes the same cells: idempotent. A run that died halfway left cells at its M and no record:
no later run reads them as applied, whether the same night is rerun or the next night runs, and
the next successful run rewrites every such base and day cell it reads (docs/RECONCILIATION.md).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import apache_beam as beam
from apache_beam import pvalue

from hashtags import day_cells, layout
from hashtags import post_state as ps
from hashtags.planning import RunPlan
from pipelines.drift import DEFAULT_LIST_LIMIT
from pipelines.recount_steps import COUNTS, count_as
from pipelines.recount_steps.bases import BaseRowFn, Bases
from pipelines.recount_steps.changes import Changes, StateRowFn, SumTagDeltas
from pipelines.recount_steps.days import DayAccounts, DayCellsOfTags, DayRowFn, SumDayDeltas
from pipelines.recount_steps.read import ArchiveFiles, Winners, related_plan
from pipelines.recount_steps.report import FinishRunFn, ReportSpec
from pipelines.recount_steps.rows import TableRows
from pipelines.recount_steps.tables import Tables, write_rows
from pipelines.related import RelatedRowFn, RelatedTags


@dataclasses.dataclass(frozen=True)
class RecountConfig:
    """Everything the graph is built from, resolved by the launcher (``pipelines.recount_launch``)."""
    plan: RunPlan  # already resolved (hashtags.post_state.resolve)
    archive_root: str
    tables: Tables
    report: ReportSpec
    fresh: bool = False  # empty prior state: a full rebuild
    priors: ps.Priors = ps.Priors()  # what the recorded runs applied (step 3)
    hidden: frozenset[str] = frozenset()  # tags hidden by moderation: never related (7c)
    list_limit: int = DEFAULT_LIST_LIMIT  # drifted tags listed in the JSON report


def build_recount(p: beam.Pipeline, config: RecountConfig) -> dict:
    """The reconciliation graph (the module doc). Writes nothing to the tables in a dry run
    (``config.plan.dry_run``). Its last step writes the drift report under ``config.report.root``
    and then records the run (step 8). Returns the steps' main PCollections by name."""
    from apache_beam.transforms.util import WaitOn

    plan, tables, fresh = config.plan, config.tables, config.fresh
    as_of = layout.midnight_utc(plan.as_of)
    horizon, account_days = day_cells.horizon(plan.as_of), day_cells.account_days(plan)
    read = (p
            | "Files" >> ArchiveFiles(config.archive_root, plan)
            | "Read" >> Winners(as_of))
    winners = read["winners"]
    changed = winners | "Changes" >> Changes(config.priors, fresh=fresh, tables=tables)
    changes = changed["changes"]
    deltas = changes | "Deltas" >> SumTagDeltas()
    day_deltas = changes | "DayDeltas" >> SumDayDeltas(horizon)
    accounts = winners | "Accounts" >> DayAccounts(account_days)
    touched = ((read["tags"], deltas | "DeltaTags" >> beam.Keys())  # + the old winners' tags (edits, deletes)
               | "Touched" >> beam.Flatten() | "DistinctTouched" >> beam.Distinct())
    rows = touched | "Rows" >> TableRows(tables, as_of, config.priors, fresh=fresh)
    joined = ({"delta": deltas, "row": rows["rows"], "day_delta": day_deltas, "accounts": accounts,
               "day_prior": rows["day_priors"]}
              | "Join" >> beam.CoGroupByKey())
    bases = joined | "Bases" >> Bases(as_of, fresh=fresh, list_limit=config.list_limit)
    days = joined | "Days" >> DayCellsOfTags(fresh=fresh, horizon=horizon, account_days=account_days)
    related = (p
               | "RelatedFiles" >> ArchiveFiles(config.archive_root, related_plan(plan))
               | "RelatedRead" >> Winners(as_of))["winners"] | "Related" >> RelatedTags(plan.as_of, config.hidden)
    counts = (read[COUNTS], changed[COUNTS], rows[COUNTS], days[COUNTS], related[COUNTS],
              touched | "CountTouched" >> beam.Map(count_as("tags_touched")),
              related["related"] | "CountRelated" >> beam.Map(count_as("related_cells")))
    run_counts = counts | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombinePerKey(sum)
    written = []
    if not plan.dry_run:
        # WriteRows (pipelines/bigtable_write.py) returns its ParDo's output: an empty PCollection
        # complete only when every row of the write is flushed (a failed mutation raises).
        written = [bases["results"] | "BaseRows" >> beam.ParDo(BaseRowFn(as_of))
                   | "WriteBase" >> write_rows(tables, tables.counts),
                   changes | "StateRows" >> beam.ParDo(StateRowFn(as_of))
                   | "WriteStates" >> write_rows(tables, tables.post_state),
                   days["days"] | "DayRows" >> beam.ParDo(DayRowFn(as_of))
                   | "WriteDays" >> write_rows(tables, tables.counts),
                   related["related"] | "RelatedRows" >> beam.ParDo(RelatedRowFn(as_of))
                   | "WriteRelated" >> write_rows(tables, tables.counts)]
    # The barrier: Beam's WaitOn (transforms/util.py, 2.77) takes each waited-on PCollection as a
    # side input (AsIter after a GroupByKey), and in a batch pipeline a side input is materialized
    # completely before its consumer runs ("would ensure that PCollections Y and Z (and hence their
    # producing transforms) are complete before SomeTransform gets executed", its doc;
    # beam.apache.org/documentation/transforms/python/other/waiton). The drift summary and the
    # counts are side inputs too, so the report is built from complete figures.
    finish = p | "Finish" >> beam.Create([None])
    if written:
        finish = finish | "AfterWrites" >> WaitOn(*written)
    reported = finish | "ReportAndRecord" >> beam.ParDo(
        FinishRunFn(plan, tables, config.report), pvalue.AsSingleton(bases["drift"]), pvalue.AsDict(run_counts))
    return {"results": bases["results"], "changes": changes, "deltas": deltas, "days": days["days"],
            "related": related["related"], "reported": reported}
