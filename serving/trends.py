"""Trending tags on the web (issue 19): ``GET /api/v1/trends/tags`` (Mastodon's semantics) and
``GET /trends`` (HTML, no script), both from ONE read of the reserved trends row.

Which entries trend: hashtags.trends.shown — reviewed as allowed, or pending on a deployment that
trends without review (``Settings.trends_without_review``, HASHTAGS_TRENDS_WITHOUT_REVIEW; the
streaming job already left out hidden and rejected tags). Mastodon's ``/api/v1/trends/tags``:
``limit`` default 10, max 20, ``offset``, a ``Link`` header with ``next``/``prev``; each item a Tag
entity with its 7-day ``history`` (day timestamp, uses and accounts as strings, newest first).
The list is rewritten every minute, so responses are cached for 30 s by browsers and 60 s by the
edge (``s-maxage``)."""
from __future__ import annotations

import calendar
import threading
import time
from typing import Callable

from flask import Flask, Response, render_template, request

from hashtag_store import StoreUnavailable
from hashtags import trends
from serving.documents import tag_path, tag_url
from serving.sparkline import SparkPoint, sparkline
from serving.views import unavailable  # the app's one 503 (body: JSON under /api/, else the HTML error page)

DEFAULT_LIMIT, MAX_LIMIT = 10, 20
PAGE_MAX = trends.LIST_MAX
CACHE_CONTROL = "public, max-age=30, s-maxage=60, stale-while-revalidate=60"


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """Mastodon clamps rather than rejects: a missing or malformed value is the default."""
    raw = request.args.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        value = default
    return max(lo, min(hi, value))


def shown_entries(svc) -> tuple[trends.TrendEntry, ...]:
    """The trending entries, best first. Raises StoreUnavailable."""
    listed = svc.breaker.call(svc.store.get().read_trends)
    return tuple(e for e in listed.entries if trends.shown(e, svc.settings.trends_without_review))


class TrendingTags:
    """The keys of the trending tags for the tag pages' "Trending" mark, from one read of the
    trends row shared by every page of this process for ``ttl`` seconds (the list changes once a
    minute; a page stays ONE read of its own row). One request refreshes an expired set while the
    others keep the previous one; a failed read keeps it too (no mark is better than no page)."""

    def __init__(self, read: Callable[[], tuple[trends.TrendEntry, ...]], ttl: float,
                 clock: Callable[[], float] = time.monotonic):
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._tags: frozenset[str] = frozenset()
        self._expires = float("-inf")
        self._refreshing = threading.Lock()

    def get(self) -> frozenset[str]:
        if self._clock() >= self._expires and self._refreshing.acquire(blocking=False):
            try:
                self._tags = frozenset(e.tag for e in self._read())
            except StoreUnavailable:
                pass
            finally:
                self._expires = self._clock() + self._ttl
                self._refreshing.release()
        return self._tags


def tag_entity(entry: trends.TrendEntry, public_url: str) -> dict:
    return {"name": entry.name, "url": tag_url(public_url, entry.tag),
            "history": [{"day": str(calendar.timegm(d.day.timetuple())), "uses": str(d.uses),
                         "accounts": str(d.accounts)} for d in entry.history],
            "following": False}


def _link(offset: int, limit: int, total: int) -> str | None:
    links = []
    base = request.base_url
    if offset + limit < total:
        links.append(f'<{base}?limit={limit}&offset={offset + limit}>; rel="next"')
    if offset > 0:
        links.append(f'<{base}?limit={limit}&offset={max(offset - limit, 0)}>; rel="prev"')
    return ", ".join(links) or None


def register(app: Flask, svc) -> None:
    import json

    @app.get("/api/v1/trends/tags")
    def trends_api():
        limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _int_arg("offset", 0, 0, PAGE_MAX)
        try:
            entries = shown_entries(svc)
        except StoreUnavailable:
            return unavailable(svc)
        body = json.dumps([tag_entity(e, svc.settings.public_url) for e in entries[offset:offset + limit]],
                          ensure_ascii=False, separators=(",", ":"))
        resp = Response(body, mimetype="application/json",
                        headers={"Cache-Control": CACHE_CONTROL})
        link = _link(offset, limit, len(entries))
        if link:
            resp.headers["Link"] = link
        return resp

    @app.get("/trends")
    def trends_page():
        try:
            entries = shown_entries(svc)
        except StoreUnavailable:
            return unavailable(svc)
        rows = [{"entry": e, "path": tag_path(e.tag),
                 "figure": sparkline([SparkPoint(d.day.strftime("%a %-d %b"), d.day.isoformat(), d.uses)
                                      for d in reversed(e.history)], id_prefix=f"t{i}",
                                     what=f"Posts per day with #{e.name}", table=False) if e.history else None}
                for i, e in enumerate(entries[:MAX_LIMIT])]
        html = render_template("trends.html", rows=rows, static_version=svc.static_version)
        return Response(html, mimetype="text/html", headers={"Cache-Control": CACHE_CONTROL})
