"""What the tag's representations say, built from one PageDocument: the JSON document of
``/api/tags/<name>``, the Mastodon entity's inputs, and the page's history, related tags and link
preview. Pure (no Flask, no I/O); the views render and send.

Rules that live here (one place each):
- Related tags are shown (page and JSON) only while ``related_as_of >= now - RELATED_MAX_AGE``: the
  nightly job rewrites them every night, so an older list means the job has stopped and the list
  no longer describes "the last 7 days". Hidden tags are filtered by the job, not here.
- The total is "posts with #tag, all time", counted up to :func:`counted_up_to`.
- Link previews (:func:`page_meta`): canonical and ``og:url`` on the configured public base URL;
  ``og:image`` = the first top post's image only if it is an https URL the page renders (the tile
  rule, hashtags.messages.is_https_url), never for a sensitive tag (a preview would show
  what the page covers); ``noindex`` for sensitive tags and when ``Settings.noindex`` is set
  (hidden tags never get here: they answer 404).
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Callable

from markupsafe import Markup, escape

from hashtags.history import History, usage_history
from hashtags.layout import PageDocument, RelatedTag, rfc3339
from serving.format import exact_posts_label, posts_label
from serving.names import quote_key
from serving.sparkline import SparkPoint, sparkline

RELATED_MAX_AGE = dt.timedelta(days=8)
DESCRIPTION_RELATED = 3  # related tags named in the meta description


def fresh_related(doc: PageDocument, now: dt.datetime) -> tuple[RelatedTag, ...]:
    if doc.related_as_of is None or doc.related_as_of < now - RELATED_MAX_AGE:
        return ()
    return doc.related


def counted_up_to(doc: PageDocument, now: dt.datetime) -> dt.datetime | None:
    """Up to when the total has counted: the end of the newest hour cell (capped at ``now``, floored
    to the minute, while that hour is still running), else the reconciliation's as_of."""
    if doc.hours:
        end = doc.hours[-1].start + dt.timedelta(hours=1)
        return min(end, now.replace(second=0, microsecond=0))
    return doc.base_as_of


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")  # what quote(key, safe="") leaves as it is


def tag_path(key: str) -> str:
    return "/tags/" + (key if _UNRESERVED.fullmatch(key) else quote_key(key))


def related_links(related: tuple[RelatedTag, ...]) -> Markup:
    """The related tags' list items, built here rather than in a template loop (a tenth of an
    uncached page's render otherwise): href percent-encoded, text escaped."""
    return Markup("".join([f'<li><a href="{tag_path(r.tag)}">#{escape(r.tag)}</a></li>\n' for r in related]))


def tag_url(public_url: str, key: str) -> str:
    return public_url.rstrip("/") + tag_path(key)


# ---- JSON ----------------------------------------------------------------------------------
def _time(ts: dt.datetime | None) -> str | None:
    return rfc3339(ts) if ts is not None else None


@functools.lru_cache(maxsize=256)
def _hour_time(start: dt.datetime) -> str:
    return rfc3339(start)  # strftime: ~7 µs a call here, 24 a document; the same hours all hour


def history_json(history: History) -> dict:
    return {
        "as_of": _time(history.as_of),
        "days": [{"day": d.day.isoformat(), "posts": d.posts, "accounts": d.accounts, "exact": d.exact}
                 for d in history.days],
        "hours": [{"start": _hour_time(h.start), "posts": h.posts} for h in history.hours],
    }


def api_document(doc: PageDocument, now: dt.datetime) -> dict:
    """``/api/tags/<name>`` (serving/openapi.json ``TagDocument``): the page's content as data."""
    return {
        "hashtag": doc.hashtag,
        "display_name": doc.display_name,
        "total_posts": doc.total_posts,
        "updated_at": _time(doc.updated_at),
        "sensitive": doc.flags.sensitive,
        "history": history_json(usage_history(doc, now)),
        "related": [{"tag": r.tag, "posts": r.posts} for r in fresh_related(doc, now)],
        "top_posts": [{"post_id": p.post_id, "image_url": p.image_url} for p in doc.top_posts],
    }


# ---- the page ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _day_label(day: dt.date) -> tuple[str, str]:
    return day.strftime("%a %-d %b"), day.isoformat()  # strftime costs µs; the same few days all day


def day_points(history: History) -> list[SparkPoint]:
    """The 7 days oldest first (the sparkline reads left to right), today labelled as such."""
    today = history.days[0].day if history.days else None
    points = []
    for d in reversed(history.days):
        label, iso = _day_label(d.day)
        points.append(SparkPoint("Today" if d.day == today else label, iso, d.posts, "" if d.exact else "provisional"))
    return points


@functools.lru_cache(maxsize=256)
def _hour_label(start: dt.datetime) -> tuple[str, str]:
    return f"{start.hour:02d}:00", f"{start.date().isoformat()}T{start.hour:02d}:00Z"


def hour_points(history: History) -> list[SparkPoint]:
    return [SparkPoint(*_hour_label(h.start), h.posts) for h in history.hours]


def week_posts(history: History) -> int:
    return sum(d.posts for d in history.days)


@dataclass(frozen=True, slots=True)
class PageMeta:
    canonical: str
    description: str
    og_image: str | None
    noindex: bool


def description(doc: PageDocument, history: History, related: tuple[RelatedTag, ...]) -> str:
    text = (f"#{doc.display_name}: {exact_posts_label(doc.total_posts)} with #{doc.display_name}, all time; "
            f"{week_posts(history):,} in the last 7 days.")
    if related:
        text += " Related: " + ", ".join("#" + r.tag for r in related[:DESCRIPTION_RELATED]) + "."
    return text


def page_meta(doc: PageDocument, history: History, related: tuple[RelatedTag, ...], *, public_url: str,
              noindex: bool, renderable: Callable[[str], bool]) -> PageMeta:
    image = None
    if not doc.flags.sensitive:
        image = next((p.image_url for p in doc.top_posts if renderable(p.image_url)), None)
    return PageMeta(
        canonical=tag_url(public_url, doc.hashtag),
        description=description(doc, history, related),
        og_image=image,
        noindex=noindex or doc.flags.sensitive,
    )


DAYS_WHAT = "Posts per day, last 7 days"
HOURS_WHAT = "Posts per hour, last 24 hours (UTC)"


def page_context(doc: PageDocument, now: dt.datetime, *, public_url: str, noindex: bool,
                 renderable: Callable[[str], bool]) -> dict:
    """The tag.html variables this module owns (the views add the tiles and the count labels)."""
    history = usage_history(doc, now)
    related = fresh_related(doc, now)
    return {
        "meta": page_meta(doc, history, related, public_url=public_url, noindex=noindex, renderable=renderable),
        "related": related_links(related),
        "days_figure": sparkline(day_points(history), id_prefix="spark-days", what=DAYS_WHAT),
        "hours_figure": sparkline(hour_points(history), id_prefix="spark-hours", what=HOURS_WHAT, table=False),
        "week_label": posts_label(week_posts(history)),
        "day_label": posts_label(sum(h.posts for h in history.hours)),
        "counted_up_to": counted_up_to(doc, now),
        "sensitive": doc.flags.sensitive,
    }
