"""Step 6: the new bases at M and the drift of the tags they cover."""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterable, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from hashtag_store import mutations
from hashtags import layout
from pipelines.drift import DEFAULT_LIST_LIMIT, DriftAccumulator, TagDrift
from pipelines.recount_steps import NAMESPACE
from pipelines.recount_steps.rows import RowSnapshot


class TagResult(NamedTuple):
    key: str
    exact: int  # the new base at M
    snapshot: RowSnapshot | None


def tag_result(key: str, deltas: Iterable, snapshots: Iterable[RowSnapshot], *, fresh: bool) -> TagResult | None:
    """The new base of a tag, or None when the run does not touch it (see the module doc, 6)."""
    deltas, snaps = list(deltas), list(snapshots)
    snap = snaps[0] if snaps else None
    if not deltas and (snap is None or not (fresh or snap.hours_pending or snap.unapplied_base)):
        return None
    start = 0 if fresh or snap is None else snap.base_before
    return TagResult(key, start + sum(t.count for t in deltas), snap)


def tag_drift(r: TagResult, as_of_ms: int) -> TagDrift:
    snap = r.snapshot
    if snap is None:  # a tag the table has never seen (e.g. only late events)
        return TagDrift(r.key, 0, max(r.exact, 0))
    if snap.newest_base_ms is not None and snap.newest_base_ms > as_of_ms:
        return TagDrift(r.key, snap.shown, snap.shown, superseded=True)
    # the page's total after the run, clamped at 0 like ``shown`` (layout.total_posts)
    return TagDrift(r.key, snap.shown, max(r.exact + snap.hours_from_as_of, 0))


class DriftCombineFn(beam.CombineFn):
    """TagResults → the drift accumulator, as JSON (a side input of the report step)."""

    def __init__(self, as_of: dt.datetime, list_limit: int = DEFAULT_LIST_LIMIT):
        self._as_of_ms = layout.to_millis(as_of)
        self._limit = list_limit

    def create_accumulator(self):
        return DriftAccumulator(list_limit=self._limit)

    def add_input(self, acc, r: TagResult):
        return acc.add(tag_drift(r, self._as_of_ms))

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0]
        for a in accs[1:]:
            out.merge(a)
        return out

    def extract_output(self, acc):
        return json.dumps(acc.to_json(), ensure_ascii=False)


class BaseRowFn(beam.DoFn):
    """A tag's result → its ``counts:base`` row at M."""

    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._written = Metrics.counter(NAMESPACE, "base_cells")
        self._zeroed = Metrics.counter(NAMESPACE, "base_cells_zero")

    def process(self, r: TagResult):
        self._written.inc()
        if r.exact == 0:
            self._zeroed.inc()
        yield mutations.base_count_row(r.key, self._as_of, r.exact)


class Bases(beam.PTransform):
    """The join's groups (key, {"delta", "row", …}) → ``results``: the TagResult of every tag the
    run writes a base for, and ``drift``: one element, the drift of those tags (JSON)."""

    def __init__(self, as_of: dt.datetime, *, fresh: bool, list_limit: int = DEFAULT_LIST_LIMIT):
        super().__init__()
        self.as_of, self.fresh, self.list_limit = as_of, fresh, list_limit

    def expand(self, joined):
        fresh = self.fresh
        results = joined | "Bases" >> beam.FlatMapTuple(lambda key, g: filter(None, [
            tag_result(key, g["delta"], g["row"], fresh=fresh)]))
        return {"results": results,
                "drift": results | "Drift" >> beam.CombineGlobally(DriftCombineFn(self.as_of, self.list_limit))}
