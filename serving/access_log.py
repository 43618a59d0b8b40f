"""The web service's request log: a WSGI middleware that logs ONE ``http_request`` record per request
(a contract: terraform/monitoring.tf's log-based metrics read these fields).

Fields: ``httpRequest`` {requestMethod, requestUrl, status, latency, userAgent, remoteIp}, ``cache``
(hit | miss | stale from the response's ``X-Cache`` header, else none), ``tag`` (the name in
``/tags/<name>``, ``/api/tags/<name>``, ``/api/v1/tags/<name>``, else null), and the trace from
``traceparent`` (W3C) or ``X-Cloud-Trace-Context`` as ``projects/<project>/traces/<id>``, which is
what Cloud Logging joins with Cloud Trace, parsed with google-cloud-logging 3.17.0's own parsers
(``_parse_trace_parent`` / ``_parse_xcloud_trace``, traceparent first, as its Flask integration).
Every field is passed explicitly (the trace as None when there is none): the record is logged after
the app returned, outside Flask's request context, so the JSON handler infers nothing.

``latency`` is the time spent in the application until it returned the response (headers and a
built body), not the time to send it to the client: Cloud Run's own request log has that one.
It is the outermost wrapper of ``app.wsgi_app`` (create_app), so the fast path's responses are
logged too. The record is logged at INFO on the ``serving.access`` logger (errors: status >= 500
at WARNING); its cost per request is in docs/BENCHMARKS.md "Request log (issue 10)".
"""
from __future__ import annotations

import atexit
import heapq
import logging
import re
import threading
import weakref
from time import monotonic, perf_counter
from typing import Callable
from urllib.parse import quote

from google.cloud.logging_v2.handlers._helpers import _parse_trace_parent, _parse_xcloud_trace

from hashtag_ops.logs import HTTP_REQUEST, log_event

HTTP_HITS = "http_hits"  # the event of the per-process summary of cached answers
# A cached answer (X-Cache: hit, status below 500) quicker than this gets no line of its own: it is
# counted in the process's next ``http_hits`` summary (issue 21: the line cost as much as the rest
# of a cached request). Misses, stale copies, errors, everything that is not a tag page, and slow
# requests keep their ``http_request`` line.
SLOW_SECONDS = 0.5
SUMMARY_SECONDS = 60.0
TOP_TAGS = 20  # tags named in a summary, most hits first
MAX_TAGS_COUNTED = 5_000  # distinct tags counted per window; the rest are counted under other_tags
_HIT = ("X-Cache", "hit")

LOGGER = logging.getLogger("serving.access")
CACHE_STATES = frozenset({"hit", "miss", "stale"})
TAG_PREFIXES = ("/tags/", "/api/tags/", "/api/v1/tags/")
MAX_TAG_CHARS = 200  # a tag is at most 100 characters (settings.MAX_TAG_LENGTH); longer is junk
# The path, the query and the user agent are logged up to this many characters each: the server
# accepts request targets up to ~64 KB (the app answers 414 above 8 KiB, but still logs the request),
# so an attacker's long URLs would otherwise become log lines of that size, billed per byte ingested.
MAX_LOGGED_CHARS = 2048


# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: the server decodes
# ``%0a`` and ``%00`` in the path, so a request could write a second line (``/tags/x%0aFAKE%20LINE``)
# into the text log or make it binary (NUL). Each such character is logged percent-encoded, i.e.
# as the client could have sent it; everything else as it came.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _percent(m: re.Match) -> str:
    return quote(m.group(), safe="")


def safe_text(text: str | None) -> str | None:
    """``text`` with control characters and line separators percent-encoded (one line, no NUL)."""
    if text is None or not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_percent, text)


def clip(text: str | None, limit: int = MAX_LOGGED_CHARS) -> str | None:
    """``text`` if short enough, else its first ``limit`` characters and how many were cut."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more]"


def tag_of(path: str) -> str | None:
    """The hashtag name in a tag URL path (as requested, not normalised), else None."""
    for prefix in TAG_PREFIXES:
        if path.startswith(prefix):
            name = path[len(prefix):]
            return name[:MAX_TAG_CHARS] if name and "/" not in name else None
    return None


def trace_of(environ, project: str | None) -> tuple[str | None, str | None, bool]:
    """(projects/<p>/traces/<id> or None, span id, sampled) from traceparent, else X-Cloud-Trace-Context."""
    trace_id, span_id, sampled = _parse_trace_parent(environ.get("HTTP_TRACEPARENT"))
    if trace_id is None:
        trace_id, span_id, sampled = _parse_xcloud_trace(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"))
    if not trace_id:
        return None, None, False
    return (f"projects/{project}/traces/{trace_id}" if project else trace_id), span_id, sampled


def _wsgi_text(value: str) -> str:
    """PEP 3333 gives PATH_INFO as latin-1-decoded bytes: the UTF-8 text the client sent."""
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


def request_url(environ, path: str) -> str:
    scheme = environ.get("HTTP_X_FORWARDED_PROTO") or environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    query = clip(safe_text(environ.get("QUERY_STRING")))
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def remote_ip(environ) -> str | None:
    """The client as the Google front end saw it: the first X-Forwarded-For hop, else the peer."""
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded:
        return clip(safe_text(forwarded.split(",", 1)[0].strip()), 64)
    return environ.get("REMOTE_ADDR")


def _header(headers, name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


class HitSummary:
    """The cached answers of one process since the last summary: how many, by status, by tag."""

    def __init__(self, interval: float = SUMMARY_SECONDS, clock: Callable[[], float] = monotonic):
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._reset(clock())

    def _reset(self, now: float) -> None:
        self._start = now
        self._hits = 0
        self._statuses: dict[int, int] = {}
        self._tags: dict[str, int] = {}
        self._other = 0

    def add(self, status: int, path: str) -> dict | None:
        """Count one hit; returns the summary to log when the window is over (then starts anew)."""
        with self._lock:
            self._hits += 1
            self._statuses[status] = self._statuses.get(status, 0) + 1
            tags = self._tags
            if path in tags:
                tags[path] += 1
            elif len(tags) < MAX_TAGS_COUNTED:
                tags[path] = 1
            else:
                self._other += 1
            now = self._clock()
            return self._take(now) if now - self._start >= self.interval else None

    def flush(self) -> dict | None:
        with self._lock:
            return self._take(self._clock()) if self._hits else None

    def _take(self, now: float) -> dict:
        by_tag: dict[str, int] = {}
        for path, n in self._tags.items():  # paths of the three tag routes: one count per name
            tag = tag_of(safe_text(_wsgi_text(path)) or "")
            if tag is not None:
                by_tag[tag] = by_tag.get(tag, 0) + n
        top = heapq.nlargest(TOP_TAGS, by_tag.items(), key=lambda kv: kv[1])
        summary = {"hits": self._hits, "window_seconds": round(now - self._start, 3),
                   "statuses": {str(k): v for k, v in sorted(self._statuses.items())},
                   "tags": len(by_tag), "other_tags": self._other,
                   "top_tags": [{"tag": t, "hits": n} for t, n in top]}
        self._reset(now)
        return summary


def _flush_at_exit(ref: weakref.ref) -> None:
    log = ref()
    if log is not None:
        log.flush()


class AccessLog:
    """WSGI middleware: ``app.wsgi_app = AccessLog(app.wsgi_app, settings.project)``. One
    ``http_request`` line per request except quick cache hits, which are summed in one ``http_hits``
    line per process and minute (written by the first hit after the minute, and at exit)."""

    def __init__(self, app, project: str | None, logger: logging.Logger = LOGGER,
                 summary: HitSummary | None = None):
        self.app = app
        self.project = project
        self.logger = logger
        self.summary = summary or HitSummary()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def __call__(self, environ, start_response):
        if not self.logger.isEnabledFor(logging.INFO):
            return self.app(environ, start_response)
        start = perf_counter()
        seen: list = []

        def _start_response(status, headers, exc_info=None):
            seen[:] = (status, headers)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, _start_response)
        except BaseException:
            self._log(environ, "500", [], perf_counter() - start)
            raise
        status, headers = seen if seen else ("500", [])
        seconds = perf_counter() - start
        if _HIT in headers and status[0] in "234" and seconds < SLOW_SECONDS:
            done = self.summary.add(int(status[:3]), environ.get("PATH_INFO", ""))
            if done is not None:
                self._log_summary(done)
            return body
        self._log(environ, status, headers, seconds)
        return body

    def flush(self) -> None:
        """Log the hits counted since the last summary (at exit: a worker's last minute)."""
        done = self.summary.flush()
        if done is not None:
            self._log_summary(done)

    def _log_summary(self, summary: dict) -> None:
        log_event(self.logger, HTTP_HITS, f"{summary['hits']} cache hits in {summary['window_seconds']:.0f} s",
                  **summary)

    def _log(self, environ, status: str, headers, seconds: float) -> None:
        code = int(status[:3])
        full_path = safe_text(_wsgi_text(environ.get("PATH_INFO", "")))
        path = clip(full_path)
        method = clip(safe_text(environ.get("REQUEST_METHOD", "")), 32)
        cache = (_header(headers, "x-cache") or "").lower()
        trace, span_id, sampled = trace_of(environ, self.project)
        log_event(
            self.logger, HTTP_REQUEST, f"{method} {path} {code}",
            level=logging.WARNING if code >= 500 else logging.INFO,
            http_request={"requestMethod": method, "requestUrl": request_url(environ, path), "status": code,
                          "latency": f"{seconds:.6f}s", "userAgent": clip(safe_text(environ.get("HTTP_USER_AGENT"))),
                          "remoteIp": remote_ip(environ)},
            trace=trace, span_id=span_id, trace_sampled=sampled,
            cache=cache if cache in CACHE_STATES else "none", tag=tag_of(full_path))
