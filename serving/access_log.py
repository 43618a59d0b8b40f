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

import logging
import re
from time import perf_counter
from urllib.parse import quote

from google.cloud.logging_v2.handlers._helpers import _parse_trace_parent, _parse_xcloud_trace

from hashtag_ops.logs import HTTP_REQUEST, log_event

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


class AccessLog:
    """WSGI middleware: ``app.wsgi_app = AccessLog(app.wsgi_app, settings.project)``."""

    def __init__(self, app, project: str | None, logger: logging.Logger = LOGGER):
        self.app = app
        self.project = project
        self.logger = logger

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
        self._log(environ, status, headers, perf_counter() - start)
        return body

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
