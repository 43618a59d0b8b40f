"""Request size limits answered by the app, so the answer carries the security headers.

The HTTP server (granian/hyper, serving/server.py) answers oversized or unparseable requests itself
with a bare response (no security headers, no body). Its limits are set above these, so a request
that is merely too big reaches the app and gets a 414 / 431 from here, rendered and headed like
every other error page:

- 414 when the URL (decoded path + query string) is longer than ``MAX_URL_CHARS`` (8 KiB; the
  longest valid page URL is a few hundred characters);
- 431 when the request headers (names + values) add up to more than ``MAX_HEADER_BYTES`` (32 KiB;
  browsers send 1-4 KiB, cookies included).

``install(app)`` makes the check the app's first ``before_request`` hook: it runs before any view
work and before the store is touched.
"""
from __future__ import annotations

import os

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


def check_request_size() -> None:
    environ = request.environ
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_URL_CHARS:
        raise RequestURITooLarge()
    if header_bytes(environ) > MAX_HEADER_BYTES:
        raise RequestHeaderFieldsTooLarge()


def install(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, check_request_size)
