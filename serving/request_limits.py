"""Request size limits answered by the app, so the answer carries the security headers.

The HTTP server (granian/hyper, serving/server.py) answers oversized or unparseable requests itself
with a bare response (no security headers, no body). Its limits are set above these, so a request
that is merely too big reaches the app and gets a 414 / 431 from here, rendered and headed like
every other error page:

- 414 when the URL (decoded path + query string) is longer than ``MAX_URL_CHARS`` (8 KiB; the
  longest valid page URL is a few hundred characters);
- 431 when the request headers (names + values) add up to more than ``MAX_HEADER_BYTES`` (32 KiB;
  browsers send 1-4 KiB, cookies included).

``install(app)`` (called by ``create_app``) puts the check in front of the tag router, inside the
request log: a request over a limit goes straight to Flask's own request handling, whose first ``before_request``
hook raises the error, so the error page, its representation (HTML or JSON by path) and its headers
are the app's usual ones; no view runs and the store is not touched.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from flask import Flask, request
from werkzeug.exceptions import RequestHeaderFieldsTooLarge, RequestURITooLarge

MAX_URL_CHARS = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024

# granian copies os.environ into every request's environ (granian/wsgi.py): skipping those keys
# before looking for HTTP_* ones halves the cost of the scan (~4 µs instead of ~9 µs per request
# with this machine's environment). Correctness does not depend on it: HTTP_* keys are never skipped.
_PROCESS_KEYS = frozenset(k for k in os.environ if not k.startswith("HTTP_"))


def header_bytes(environ: dict) -> int:
    """Bytes of the request's header names and values as the app sees them (WSGI ``HTTP_*`` keys)."""
    n = 0
    for key in environ.keys() - _PROCESS_KEYS:
        if key[:5] == "HTTP_":
            n += len(key) - 5 + len(environ[key])
    return n


def over_limit(environ: dict) -> int | None:
    """414, 431 or None (within the limits)."""
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_URL_CHARS:
        return 414
    if header_bytes(environ) > MAX_HEADER_BYTES:
        return 431
    return None


_STATUS_KEY = "hashtags.over_limit"
_ERRORS = {414: RequestURITooLarge, 431: RequestHeaderFieldsTooLarge}


class RequestLimits:
    """WSGI layer in front of what the app built so far: within the limits, that; over them,
    Flask's own request handling (under the tag router), which raises the error."""

    def __init__(self, app: Flask):
        self._app = app.wsgi_app
        self._flask = type(app).wsgi_app.__get__(app)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        status = over_limit(environ)
        if status is None:
            return self._app(environ, start_response)
        environ[_STATUS_KEY] = status
        return self._flask(environ, start_response)


def _raise_if_over_limit() -> None:
    status = request.environ.get(_STATUS_KEY)
    if status is not None:
        raise _ERRORS[status]()


def install(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _raise_if_over_limit)
    app.wsgi_app = RequestLimits(app)
