"""Related tags (``meta:related``, hashtags/layout.py): the tags that most often appear on the same
posts as a tag over the last week. Pure: the window, the pairs of a post, the support rule and the
ranking; the Beam graph is pipelines/related.py.

For a run at midnight M:

* **Window**: the archive's ARRIVAL days [M − 7 d, M − 1 d] (a bounded read, never all history) and,
  of those events, per post the latest with event time before M (the reconciliation's winner);
  the post counts when that winner is published with event time in [M − 7 d, M). An event of the
  window's first day that arrived a day before it is not read (at most the minutes around one
  midnight).
* **Pairs**: a post's distinct tag keys (the shared rule, at most settings.MAX_TAGS_PER_POST = 30,
  so at most 435 pairs a post) minus the hidden tags; every unordered pair of two of them counts
  that post once for both tags.
* **Support and rank**: a pair with at least ``RELATED_MIN_POSTS`` posts makes each tag related to
  the other; a tag keeps its ``layout.RELATED_MAX`` related tags with the most posts, ties by tag key
  (ascending, code-point order), best first.
* **Entries**: every tag on a counted post gets an entry, possibly empty; a hidden tag's entry is
  empty (never a subject, never related). A tag not seen in the window keeps its older entry, which
  the page shows only while it is fresh (``related_as_of`` within 8 days).

Candidates are ``(posts, tag)`` tuples (primitives through the shuffle); :func:`to_related` builds
the layout's ``RelatedTag`` list at the write.
"""
from __future__ import annotations

import datetime as dt
import heapq
import itertools
from typing import Iterable, Iterator, NamedTuple, Sequence

from hashtags import layout
from hashtags.layout import RelatedTag
from hashtags.settings import RELATED_MIN_POSTS, RELATED_WINDOW_DAYS

Candidate = tuple  # (posts: int, tag: str)


class Window(NamedTuple):
    first_arrival: dt.date  # the arrival partitions read, both ends inclusive
    last_arrival: dt.date
    start: dt.datetime  # event times counted: [start, end)
    end: dt.datetime


def window(as_of: dt.date) -> Window:
    m = layout.midnight_utc(as_of)
    return Window(as_of - dt.timedelta(days=RELATED_WINDOW_DAYS), as_of - dt.timedelta(days=1),
                  m - dt.timedelta(days=RELATED_WINDOW_DAYS), m)


class PostTags(NamedTuple):
    visible: tuple[str, ...]  # sorted: the tags that pair
    hidden: tuple[str, ...]  # seen, never paired (their entries are empty)


def post_tags(tags: Iterable[str], hidden: frozenset[str]) -> PostTags:
    distinct = sorted(set(tags))
    return PostTags(tuple(t for t in distinct if t not in hidden), tuple(t for t in distinct if t in hidden))


def tag_pairs(visible: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Every unordered pair (a, b), a < b, of a post's distinct sorted tags: n(n−1)/2 of them."""
    return itertools.combinations(visible, 2)


def supported(pair: tuple[str, str], posts: int, min_posts: int = RELATED_MIN_POSTS
              ) -> Iterator[tuple[str, Candidate]]:
    """A pair's two (subject, candidate) entries when it has the support, else none."""
    if posts >= min_posts:
        a, b = pair
        yield a, (posts, b)
        yield b, (posts, a)


def _rank(c: Candidate) -> tuple:
    return -c[0], c[1]


def best(candidates: Iterable[Candidate], k: int = layout.RELATED_MAX) -> list[Candidate]:
    """The ``k`` candidates with the most posts, ties by tag (ascending), best first."""
    return heapq.nsmallest(k, candidates, key=_rank)


def to_related(candidates: Iterable[Candidate]) -> list[RelatedTag]:
    return [RelatedTag(tag, posts) for posts, tag in candidates]
