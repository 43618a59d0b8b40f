"""Steps 3, 4 and 7: each winner against the post's state as the recorded runs applied it → the
changes → Σ deltas per tag, and the changed posts' new state rows."""
from __future__ import annotations

import datetime as dt
from typing import Iterator, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from hashtags import post_state as ps
from pipelines.recount_steps import COUNTS, NAMESPACE, count_as
from pipelines.recount_steps.tables import Tables
from pipelines.transforms import TallyFn

LOOKUP_BATCH = (100, 500)  # posts per state lookup RPC (min, max)


class PostChange(NamedTuple):
    post_id: str
    old: ps.PostState | None  # the state before M (None: none, or a full rebuild)
    new: ps.PostState


class _ChangeCounters:
    def __init__(self):
        self.posts = Metrics.counter(NAMESPACE, "posts")
        self.changed = Metrics.counter(NAMESPACE, "posts_changed")


class FreshChangesFn(beam.DoFn):
    """A full rebuild: every winner is a change from empty state."""

    def __init__(self):
        self._n = _ChangeCounters()

    def process(self, kv):
        post_id, c = kv
        self._n.posts.inc()
        self._n.changed.inc()
        yield PostChange(post_id, None, ps.state_of(post_id, c))


class PriorStateChangesFn(beam.DoFn):
    """A batch of (post_id, winner) → the posts whose winner is later than their applied state:
    ONE multi-key read per batch (``hashtag_store.post_state.PostStateReader``)."""

    def __init__(self, tables: Tables, priors: ps.Priors):
        self._tables, self._priors = tables, priors
        self._reader = None
        self._n = _ChangeCounters()
        self._lookups = Metrics.counter(NAMESPACE, "state_lookup_rpcs")
        self._found = Metrics.counter(NAMESPACE, "posts_with_state")

    def setup(self):
        from hashtag_store.post_state import PostStateReader

        t = self._tables
        self._reader = PostStateReader(t.project, t.instance, t.post_state, self._priors, app_profile=t.app_profile)

    def process(self, batch):
        prior = self._reader.read_states([post_id for post_id, _ in batch])
        self._lookups.inc()
        self._found.inc(len(prior))
        self._n.posts.inc(len(batch))
        for post_id, c in batch:
            old = prior.get(post_id)
            if old is not None and ps.order_of(c) <= ps.order_of(old.order):
                continue  # a duplicate or an older event: nothing changes
            self._n.changed.inc()
            yield PostChange(post_id, old, ps.state_of(post_id, c))

    def teardown(self):
        if self._reader is not None:
            self._reader.close()


class Changes(beam.PTransform):
    """(post_id, winner) → ``changes``: a PostChange for every post whose winner is later than its
    state as the recorded runs applied it (``priors``; ``fresh``: from empty state, no lookups), and
    ``counts``: ``posts``, ``posts_changed`` and ``state_lookup_rpcs`` (one per batch)."""

    def __init__(self, priors: ps.Priors, *, fresh: bool, tables: Tables | None = None):
        super().__init__()
        self.priors, self.fresh, self.tables = priors, fresh, tables

    def expand(self, winners):
        counts = [winners | "CountPosts" >> beam.Map(count_as("posts"))]
        if self.fresh:
            changes = winners | "FromEmptyState" >> beam.ParDo(FreshChangesFn())
        else:
            batches = winners | "Batch" >> beam.BatchElements(min_batch_size=LOOKUP_BATCH[0],
                                                               max_batch_size=LOOKUP_BATCH[1])
            counts.append(batches | "CountLookups" >> beam.Map(count_as("state_lookup_rpcs")))
            changes = batches | "AgainstPriorState" >> beam.ParDo(PriorStateChangesFn(self.tables, self.priors))
        counts.append(changes | "CountChanged" >> beam.Map(count_as("posts_changed")))
        return {"changes": changes, COUNTS: tuple(counts) | "Counts" >> beam.Flatten()}


_NO_SPELLING = float("inf")


def change_deltas(change: PostChange) -> Iterator[tuple[str, tuple[int, float, None]]]:
    """A change's per-tag deltas in ``TallyFn``'s input form (no spelling: bases carry none)."""
    for key, d in ps.tag_deltas(change.old, change.new):
        yield key, (d, _NO_SPELLING, None)


class SumTagDeltas(beam.PTransform):
    """PostChange → (key, Tally): Σ deltas per tag, with the streaming job's combiner."""

    def expand(self, changes):
        return (changes
                | "TagDeltas" >> beam.FlatMap(change_deltas)
                | "SumPerTag" >> beam.CombinePerKey(TallyFn()))


class StateRowFn(beam.DoFn):
    """A change → its post's state row at M."""

    def __init__(self, as_of: dt.datetime):
        self._as_of = as_of
        self._written = Metrics.counter(NAMESPACE, "state_cells")

    def process(self, change: PostChange):
        from hashtag_store.post_state import state_row

        self._written.inc()
        yield state_row(change.post_id, change.new, self._as_of)
