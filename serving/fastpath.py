"""Cache-hit fast path: a thin WSGI layer in front of Flask.

A ``GET /tags/<name>`` or ``GET /api/tags/<name>`` whose name is already a cache key (so it is the
canonical spelling of a valid tag) and whose page is fresh in the cache, with its representation
already rendered, is answered here from the cached bytes, without a Flask request context,
routing or response object: the same headers (serving/responses.py), a fraction of the CPU.
Everything else (misses, redirects, 404s, errors, HEAD, the first hit before a representation is
rendered) goes to the Flask app unchanged, which reads the store and fills the cache.
"""
from __future__ import annotations

from typing import Callable, Iterable

from serving.responses import HTML, JSON, accepts_gzip, not_modified, page_headers

_ROUTES = (("/tags/", "html", HTML), ("/api/tags/", "json", JSON))


class FastPath:
    def __init__(self, wsgi_app: Callable, ext: dict, security_headers: dict[str, str]):
        self.wsgi_app = wsgi_app
        self._cache = ext["cache"]
        self._settings = ext["settings"]
        self._security = list(security_headers.items())

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            for prefix, kind, mimetype in _ROUTES:
                if path.startswith(prefix):
                    name = path[len(prefix):]
                    # PATH_INFO is latin-1 decoded bytes: an ASCII name equals its key; a non-ASCII
                    # one never matches here and takes the full path (correct, just slower).
                    if name and "/" not in name:
                        entry = self._cache.peek_fresh(name)
                        body = entry.bodies.get(kind) if entry is not None and entry.doc is not None else None
                        if body is not None:
                            return self._send(environ, start_response, body, mimetype)
                    break
        return self.wsgi_app(environ, start_response)

    def _send(self, environ, start_response, body, mimetype):
        gz = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))
        if not_modified(environ.get("HTTP_IF_NONE_MATCH"), body):
            start_response("304 NOT MODIFIED", page_headers(self._settings, body, gz=gz, mimetype=mimetype,
                                                           x_cache="hit", status=304) + self._security)
            return [b""]
        start_response("200 OK", page_headers(self._settings, body, gz=gz, mimetype=mimetype, x_cache="hit",
                                              status=200) + self._security)
        return [body.gzip_data if gz else body.data]
