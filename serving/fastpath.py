"""The fast path: a thin WSGI layer in front of Flask for the two page routes.

A ``GET /tags/<name>`` or ``GET /api/tags/<name>`` whose name is already the canonical spelling of
a valid tag (ASCII: PATH_INFO is latin-1 decoded bytes, so an ASCII name equals its key) is looked
up here: a fresh cache entry whose representation is rendered is answered from the cached bytes; a
miss reads the row (ONE read), fills the cache and, when the tag exists, renders and answers too.
Either way without a Flask request context, routing or response object, with the same headers
(serving/responses.py) and the same bytes (the same renderers), at a fraction of the CPU.
Everything else (redirects, unknown tags, outages, HEAD, non-ASCII names) goes to the Flask app
unchanged; when this layer has already looked the tag up, it hands the result over in the WSGI
environ (``views.LOOKUP_KEY``), so the view does not read the row a second time.
"""
from __future__ import annotations

from typing import Callable, Iterable

from serving.names import resolve
from serving.responses import HTML, JSON, accepts_gzip, not_modified, page_headers

_ROUTES = (("/tags/", "html", HTML), ("/api/tags/", "json", JSON))


class FastPath:
    def __init__(self, wsgi_app: Callable, ext: dict, security_headers: dict[str, str]):
        from serving import views

        self.wsgi_app = wsgi_app
        self._ext = ext
        self._cache = ext["cache"]
        self._settings = ext["settings"]
        self._security = list(security_headers.items())
        self._lookup = views.lookup
        self._unavailable = views.Unavailable
        self._handover = views.LOOKUP_KEY

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            for prefix, kind, mimetype in _ROUTES:
                if path.startswith(prefix):
                    name = path[len(prefix):]
                    if name and "/" not in name:
                        entry = self._cache.peek_fresh(name)
                        body = entry.bodies.get(kind) if entry is not None and entry.doc is not None else None
                        if body is not None:
                            return self._send(environ, start_response, body, mimetype, "hit")
                        if name.isascii():
                            resolved = resolve(name)
                            if resolved is not None and resolved.canonical:
                                return self._look_up(environ, start_response, resolved.key, kind, mimetype)
                    break
        return self.wsgi_app(environ, start_response)

    def _look_up(self, environ, start_response, key, kind, mimetype):
        try:
            entry, how = self._lookup(self._ext, key)
        except self._unavailable as e:
            environ[self._handover] = (key, e)
            return self.wsgi_app(environ, start_response)
        if entry.doc is None or how == "stale":  # 404 and stale pages: Flask renders them
            environ[self._handover] = (key, (entry, how))
            return self.wsgi_app(environ, start_response)
        body = entry.body(kind, self._ext["render"][kind])
        return self._send(environ, start_response, body, mimetype, how)

    def _send(self, environ, start_response, body, mimetype, x_cache):
        gz = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))
        if not_modified(environ.get("HTTP_IF_NONE_MATCH"), body):
            start_response("304 NOT MODIFIED", page_headers(self._settings, body, gz=gz, mimetype=mimetype,
                                                           x_cache=x_cache, status=304) + self._security)
            return [b""]
        start_response("200 OK", page_headers(self._settings, body, gz=gz, mimetype=mimetype, x_cache=x_cache,
                                              status=200) + self._security)
        return [body.gzip_data if gz else body.data]
