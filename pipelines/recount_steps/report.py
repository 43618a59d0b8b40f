"""Step 8: the drift report and the run record, the job's last step."""
from __future__ import annotations

import datetime as dt
import json
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from hashtags import layout
from hashtags import post_state as ps
from hashtags.planning import RunPlan
from pipelines import drift
from pipelines.drift import DEFAULT_WORST_N, DriftAccumulator
from pipelines.recount_steps.tables import Tables


class ReportSpec(NamedTuple):
    """Where and how the job reports itself (``FinishRunFn``)."""
    root: str  # the report folder (local or gs://)
    threshold: float | None = None
    worst_n: int = DEFAULT_WORST_N
    note: str | None = None  # what ``hashtags.post_state.resolve`` adjusted, if anything


def report_paths(root: str, day: dt.date) -> tuple[str, str]:
    """``<root>/drift-<as_of>.json`` and ``.md`` (what the DAG's publish_drift_report reads)."""
    base = f"{root.rstrip('/')}/drift-{day.isoformat()}"
    return f"{base}.json", f"{base}.md"


COUNT_NAMES = ("archive_files", "events_read", "events_rejected", "events_before_as_of", "posts",
               "posts_changed", "state_lookup_rpcs", "tags_touched", "table_rows", "related_posts")
# Cells the run computes for the table besides the bases and states (written unless a dry run).
WRITTEN_NAMES = ("day_post_cells", "day_account_cells", "related_cells")


def report_extra(plan: RunPlan, note: str | None, counts: dict, acc: DriftAccumulator,
                 now: dt.datetime) -> dict:
    """The report's fields besides the drift: the plan and the run's in-graph counts. One base
    cell per touched tag (= the drift's tags), one state cell per changed post; none in a dry run."""
    extra = {
        "mode": plan.mode,
        "arrived_from": plan.arrived_from.isoformat() if plan.arrived_from else None,
        "arrived_to": plan.arrived_to.isoformat() if plan.arrived_to else None,
        **{name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        "base_cells_written": 0 if plan.dry_run else acc.tags,
        "state_cells_written": 0 if plan.dry_run else int(counts.get("posts_changed", 0)),
        **{f"{name}_written": 0 if plan.dry_run else int(counts.get(name, 0)) for name in WRITTEN_NAMES},
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if note:
        extra["note"] = note
    return extra


def _write_text(path: str, text: str) -> None:
    if "://" not in path:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with FileSystems.create(path) as f:
        f.write(text.encode("utf-8"))


class FinishRunFn(beam.DoFn):
    """One element (after every write: see ``build_recount``) → the drift report files, then the
    run record (unless a dry run). Both are idempotent (files overwritten, the record a SetCell at
    M), so a retried bundle does no harm."""

    def __init__(self, plan: RunPlan, tables: Tables, spec: ReportSpec):
        self._plan, self._tables, self._spec = plan, tables, spec

    def process(self, _, drift_json: str, counts: dict):
        from hashtag_store import post_state as state_store

        plan, spec = self._plan, self._spec
        now = dt.datetime.now(layout.UTC)
        acc = DriftAccumulator.from_json(json.loads(drift_json))
        as_of_s = layout.midnight_utc(plan.as_of).strftime("%Y-%m-%dT%H:%M:%SZ")
        report = drift.build_report(acc, as_of=as_of_s, table=self._tables.counts, dry_run=plan.dry_run,
                                    threshold=spec.threshold,
                                    extra=report_extra(plan, spec.note, counts, acc, now))
        json_path, md_path = report_paths(spec.root, plan.as_of)
        _write_text(json_path, drift.render_json(report))
        _write_text(md_path, drift.render_markdown(report, spec.worst_n))
        if not plan.dry_run:
            t = self._tables
            record = ps.RunRecord(plan.as_of, plan.mode, plan.arrived_from, plan.arrived_to,
                                  dt.datetime.now(layout.UTC))
            state_store.write_run(t.project, t.instance, t.post_state, record)
        yield json_path
