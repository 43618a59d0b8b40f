"""The related-tags branch of the reconciliation (the rule: hashtags/related.py): the winners of the
window's archive days (``pipelines.recount_steps.read.Winners``, the same extraction and winner order as the
counts) → (tag, best related candidates) for every tag seen on a counted post.

Cost: a post with n distinct tags makes n(n−1)/2 pair elements (at most 435 for the 30 tags a post
counts) and n "seen" markers. Both are summed by ``CombinePerKey`` (Beam lifts the combiner before
the shuffle, so a bundle sends one element per distinct pair / tag, not one per post), the pairs
under the support are dropped, and the top list is a bounded ``CombineFn`` (:class:`TopRelatedFn`,
lifted too) whose accumulator never holds more than 4 × RELATED_MAX candidates.
"""
from __future__ import annotations

import itertools

import apache_beam as beam
from apache_beam.metrics import Metrics

from hashtags import layout, related
from hashtags import post_state as ps
from hashtags.settings import RELATED_MIN_POSTS
from pipelines.recount_steps import COUNTS, NAMESPACE, count_as

_DELETED = ps.CANDIDATE_FIELDS.index("deleted")


def window_post_tags(kv, start_us: int, hidden: frozenset[str]):
    """(post_id, winner) → its PostTags when the winner is published with event time ≥ the window's
    start (every winner is before M already)."""
    post_id, c = kv
    if c[_DELETED] or ps.event_time_us(c) < start_us:
        return
    tags = ps.state_of(post_id, c).tags
    if tags:
        yield related.post_tags(tags, hidden)


def _pair_ones(pt: related.PostTags):
    for pair in related.tag_pairs(pt.visible):
        yield pair, 1


def _seen(pt: related.PostTags):
    for tag in itertools.chain(pt.visible, pt.hidden):
        yield tag, None


class TopRelatedFn(beam.CombineFn):
    """Per subject tag: candidates ``(posts, tag)`` and ``None`` markers (the tag was seen) → the
    best ``limit`` candidates (hashtags.related.best), [] for a tag with none."""

    def __init__(self, limit: int = layout.RELATED_MAX):
        self._limit = limit

    def create_accumulator(self):
        return []

    def add_input(self, acc, candidate):
        if candidate is not None:
            acc.append(candidate)
            if len(acc) > 4 * self._limit:
                acc = related.best(acc, self._limit)
        return acc

    def merge_accumulators(self, accs):
        return related.best(itertools.chain.from_iterable(accs), self._limit)

    def compact(self, acc):
        return related.best(acc, self._limit)

    def extract_output(self, acc):
        return related.best(acc, self._limit)


class RelatedTags(beam.PTransform):
    """(post_id, winner) of the window's arrival days → ``related``: (tag, [(posts, related tag), …]
    best first) for every tag seen on a counted post (hidden tags: an empty list), and ``counts``
    (``related_posts``: the posts counted)."""

    def __init__(self, as_of_day, hidden: frozenset[str] = frozenset(), *, min_posts: int = RELATED_MIN_POSTS,
                 limit: int = layout.RELATED_MAX):
        super().__init__()
        self.window = related.window(as_of_day)
        self.hidden, self.min_posts, self.limit = frozenset(hidden), min_posts, limit

    def expand(self, winners):
        start_us = ps.micros(self.window.start)
        posts = winners | "WindowPosts" >> beam.FlatMap(window_post_tags, start_us, self.hidden)
        min_posts = self.min_posts
        candidates = (posts
                      | "Pairs" >> beam.FlatMap(_pair_ones)
                      | "PostsPerPair" >> beam.CombinePerKey(sum)
                      | "Supported" >> beam.FlatMapTuple(lambda pair, n: related.supported(pair, n, min_posts)))
        seen = posts | "Seen" >> beam.FlatMap(_seen)
        lists = ((candidates, seen)
                 | "WithSeen" >> beam.Flatten()
                 | "TopPerTag" >> beam.CombinePerKey(TopRelatedFn(self.limit)))
        return {"related": lists, COUNTS: posts | "CountRelatedPosts" >> beam.Map(count_as("related_posts"))}


class RelatedRowFn(beam.DoFn):
    """(tag, candidates) → its ``meta:related`` row at M."""

    def __init__(self, as_of):
        self._as_of = as_of
        self._written = Metrics.counter(NAMESPACE, "related_cells")

    def process(self, kv):
        from hashtag_store import mutations

        key, candidates = kv
        self._written.inc()
        yield mutations.related_row(key, self._as_of, related.to_related(candidates))
