"""The tag routes: ONE handler (:func:`answer`) over a table of representations (HTML, JSON,
Mastodon's Tag entity), mounted by :class:`TagRouter` as WSGI in front of Flask, which serves the
rest (health, static files, dev images, the API document, trends). Every response of the app gets
its error body from :func:`error_body` (the representation of its path: JSON under /api/, else the
HTML page) and its shared headers from :class:`TagRouter`'s one header step (the security headers,
and CORS under /api/). What each URL answers: docs/SERVING.md.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable
from urllib.parse import quote

from flask import Flask, Response, abort, request
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from hashtag_store import StoreUnavailable
from hashtags.layout import PageDocument
from hashtags.messages import is_https_url
from hashtags.settings import MAX_URL_LENGTH
from serving import devimages, documents, mastodon, responses
from serving.cache import Entry
from serving.format import exact_posts_label, posts_label
from serving.names import quote_key, resolve
from serving.responses import HTML, JSON, NOT_FOUND_MAX_AGE, Reply

if TYPE_CHECKING:
    from serving.services import Services

log = logging.getLogger(__name__)
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json").read_bytes()

# Tiles loaded eagerly (the rest lazily): the first screen of the phone grid (4 rows of 3 at 390×844)
# and of the desktop grid (2–3 rows at 1280×800); the first tile, the LCP candidate, at high priority.
EAGER_TILES = 12
# width/height 320: intrinsic size attributes (the grid scales tiles, aspect-ratio stays 1:1)
_TILE = '<li><a href="{}"><img src="{}" alt="Post {}" width="320" height="320"{}></a></li>\n'
_FIRST = ' fetchpriority="high"'
_LAZY = ' loading="lazy" decoding="async"'


# ---- rendering ------------------------------------------------------------------------------
def tiles_html(doc: PageDocument, post_url_template: str, dev_images: bool) -> Markup:
    """The tiles, every value escaped: image URLs the page may not render are dropped whatever the
    table holds; post ids are percent-encoded into the configured URL pattern."""
    plain = None if dev_images else _plain_tiles(doc, post_url_template)
    return plain if plain is not None else _escaped_tiles(doc, post_url_template, dev_images)


def _escaped_tiles(doc: PageDocument, post_url_template: str, dev_images: bool) -> Markup:
    parts = []
    for post in doc.top_posts:
        if not is_https_url(post.image_url):  # the domain's image rule
            continue
        src = devimages.rewrite_url(post.image_url) if dev_images else post.image_url
        href = post_url_template.format(post_id=quote(post.post_id, safe=""))
        n = len(parts) + 1
        parts.append(_TILE.format(escape(href), escape(src), n, _loading(n)))
    return Markup("".join(parts))


def _loading(n: int) -> str:
    return _FIRST if n == 1 else _LAZY if n > EAGER_TILES else ""


# Speed-up kept on evidence (uncached page ~3 x the CPU without it: docs/BENCHMARKS.md "Serving path
# (issue 12)"): plain https URLs and unreserved ids need no per-value escaping but '&', checked with one
# regex over the newline-joined values (a property test checks the bytes equal _escaped_tiles').
_PLAIN_HTTPS = r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%!$&()*+,;=:@/-]*)?(?:\?[A-Za-z0-9._~%!$&()*+,;=:@/?-]*)?"
_ALL_PLAIN_HTTPS = re.compile(rf"(?:{_PLAIN_HTTPS})(?:\n(?:{_PLAIN_HTTPS}))*")
_ALL_SAFE_IDS = re.compile(r"[A-Za-z0-9_.~-]+(?:\n[A-Za-z0-9_.~-]+)*")  # what quote(x, safe="") leaves as is


def _plain_tiles(doc: PageDocument, post_url_template: str) -> Markup | None:
    posts = doc.top_posts
    if not posts or post_url_template.count("{") != 1 or post_url_template.count("{post_id}") != 1:
        return None
    urls = "\n".join([p.image_url for p in posts])
    if (not _ALL_PLAIN_HTTPS.fullmatch(urls) or not _ALL_SAFE_IDS.fullmatch("\n".join([p.post_id for p in posts]))
            or max([len(p.image_url) for p in posts]) > MAX_URL_LENGTH):
        return None
    prefix, suffix = (str(escape(part)) for part in post_url_template.replace("}}", "}").split("{post_id}"))
    amp = "&" in urls
    return Markup("".join([
        f'<li><a href="{prefix}{p.post_id}{suffix}"><img src="{p.image_url.replace("&", "&amp;") if amp else p.image_url}"'
        f' alt="Post {n}" width="320" height="320"{_loading(n)}></a></li>\n'
        for n, p in enumerate(posts, 1)]))


def render_html(svc: Services, doc: PageDocument, stale: bool) -> bytes:
    return svc.page_template.render(
        doc=doc,
        tiles=tiles_html(doc, svc.settings.post_url_template, svc.settings.dev_images),
        count_label=posts_label(doc.total_posts),
        count_exact=exact_posts_label(doc.total_posts),
        stale=stale,
        # a stale copy is served because the store does not answer: no second read for the mark
        trending=not stale and doc.hashtag in svc.trending.get(),
        static_version=svc.static_version,
        **documents.page_context(doc, _now(), public_url=svc.settings.public_url, noindex=svc.settings.noindex,
                                 renderable=lambda url: not svc.settings.dev_images and is_https_url(url)),
    ).encode("utf-8")


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def render_json(svc: Services, doc: PageDocument, stale: bool) -> bytes:
    body = documents.api_document(doc, _now())
    return _json(dict(body, stale=True) if stale else body)


def render_mastodon(svc: Services, doc: PageDocument, stale: bool) -> bytes:
    """Mastodon clients read a non-2xx body as an error entity, so a stale copy is not sent."""
    if stale:
        return _json({"error": "unavailable"})
    return _json(mastodon.entity_for(doc, _now(), svc.settings.public_url))


# Error texts by status: (JSON error code, HTML title, HTML message); others from Werkzeug's names.
_ERRORS = {
    404: ("not_found", "Hashtag not found", "There is no hashtag with that name."),
    500: ("internal", "Something went wrong", "Something went wrong on our side."),
    503: ("unavailable", "Temporarily unavailable", "We could not load this page. Please try again in a moment."),
}


def _error_text(status: int) -> tuple[str, str, str]:
    name = HTTP_STATUS_CODES.get(status, "Error")
    return _ERRORS.get(status) or (name.lower().replace(" ", "_"), name, name)


def html_error(svc: Services, status: int, key: str | None) -> bytes:
    _, title, message = _error_text(status)
    if status == 404 and key is not None:
        message = f"No posts with #{key} yet."
    return svc.error_template.render(status=status, title=title, message=message,
                                     static_version=svc.static_version).encode("utf-8")


def mastodon_error(svc: Services, status: int, key: str | None) -> bytes:
    """Mastodon's error entity; its 404 text is Rails' "Record not found"."""
    return _json({"error": "Record not found" if status == 404 else _error_text(status)[0]})


def json_error(svc: Services, status: int, key: str | None) -> bytes:
    code = _error_text(status)[0]
    return _json({"error": code, "hashtag": key} if status == 404 and key is not None else {"error": code})


def error_body(svc: Services, path: str, status: int, key: str | None = None) -> tuple[bytes, str]:
    """(body, content type) of an error answered on ``path``: THE error body of every route."""
    rep = representation_for(path)
    return rep.error(svc, status, key), rep.mimetype


def flask_error(svc: Services, status: int, headers: dict[str, str] | None = None) -> Response:
    """An error from a Flask route (its handlers and the routes' own 503s), with :func:`error_body`."""
    body, mimetype = error_body(svc, request.path, status)
    return Response(body, status=status, content_type=mimetype, headers=headers)


def unavailable(svc: Services) -> Response:
    """503 from a Flask route whose store read failed (as the tag routes' :func:`_unavailable`)."""
    return flask_error(svc, 503, {"Retry-After": str(svc.settings.retry_after_seconds), "Cache-Control": "no-store"})


@dataclass(frozen=True, slots=True)
class Representation:
    kind: str  # names the rendered body in the cache entry
    prefix: str  # the route: prefix + <name>
    mimetype: str
    render: Callable[[Services, PageDocument, bool], bytes]  # (services, listed doc, stale?)
    error: Callable[[Services, int, str | None], bytes]  # (services, status, key if known): not found, unavailable, ...


REPRESENTATIONS = (
    Representation("json", "/api/tags/", JSON, render_json, json_error),
    Representation("mastodon", "/api/v1/tags/", JSON, render_mastodon, mastodon_error),
    Representation("html", "/tags/", HTML, render_html, html_error),
)


def representation_for(path: str) -> Representation:
    """The representation whose route the path is under (for error bodies): JSON under /api/."""
    for rep in REPRESENTATIONS:
        if path.startswith(rep.prefix):
            return rep
    return REPRESENTATIONS[0] if path.startswith("/api/") else REPRESENTATIONS[-1]


# ---- the handler ----------------------------------------------------------------------------
def listed(doc: PageDocument | None) -> bool:
    # a hidden tag answers exactly as an unknown one (issue 11: moderation)
    return doc is not None and doc.total_posts > 0 and not doc.flags.hidden


def lookup(svc: Services, key: str, entry: Entry | None) -> tuple[Entry | None, str]:
    """(the new cache entry, "miss") after a store read; when the read fails or the circuit is open,
    (``entry``, "stale") if that expired entry is a last good copy, else (None, "none")."""
    try:
        doc = svc.bulkhead.call(svc.breaker.call, svc.store.get().read_page, key)
    except StoreUnavailable as e:
        log.debug("store unavailable reading %r: %s", key, e)
        return (entry, "stale") if entry is not None and listed(entry.doc) else (None, "none")
    return svc.cache.put(key, doc), "miss"


def _error(svc: Services, rep: Representation, status: int, key: str | None, extra: list[tuple[str, str]]) -> Reply:
    return responses.error(status, rep.mimetype, rep.error(svc, status, key), extra)


def _not_found(svc: Services, rep: Representation, key: str | None, x_cache: str) -> Reply:
    return _error(svc, rep, 404, key, [("Cache-Control", f"public, max-age={NOT_FOUND_MAX_AGE}"), ("X-Cache", x_cache)])


def _unavailable(svc: Services, rep: Representation, body: bytes, x_cache: str) -> Reply:
    return responses.error(503, rep.mimetype, body, [("Retry-After", str(svc.settings.retry_after_seconds)),
                                                     ("Cache-Control", "no-store"), ("X-Cache", x_cache)])


def answer(svc: Services, rep: Representation, name: str, environ: dict) -> Reply:
    """The reply to ``<rep.prefix><name>`` (``name`` decoded from the path). A fresh entry cached
    under ``name`` proves ``name`` is a canonical key (only resolved keys are cached)."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return _error(svc, rep, 405, None, [("Allow", "GET, HEAD")])
    entry, fresh = svc.cache.get(name)
    how = "hit"
    if not fresh:
        resolved = resolve(name)
        if resolved is None:
            return _not_found(svc, rep, None, "none")
        if not resolved.canonical:
            return responses.redirect(rep.prefix + quote_key(resolved.key))
        entry, how = lookup(svc, resolved.key, entry)
        if entry is None:
            return _unavailable(svc, rep, rep.error(svc, 503, None), how)
    if not listed(entry.doc):
        return _not_found(svc, rep, name, how)
    if how == "stale":
        return _unavailable(svc, rep, rep.render(svc, entry.doc, True), "stale")
    body = entry.bodies.get(rep.kind) or entry.body(rep.kind, lambda doc: rep.render(svc, doc, False))
    return responses.page(svc.settings, body, environ, rep.mimetype, how)


# ---- request size limits ----------------------------------------------------------------------
# Answered here, with the usual bodies and headers, far below what the HTTP server refuses bare
# (docs/SERVING.md "Web server"): a URL (path + query) over 8 KiB → 414, headers over 32 KiB → 431.
MAX_URL_CHARS = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
# granian copies os.environ into each request's environ: skipping those keys halves the scan.
_PROCESS_KEYS = frozenset(k for k in os.environ if not k.startswith("HTTP_"))


def header_bytes(environ: dict) -> int:
    """Bytes of the request's header names and values as the app sees them (WSGI ``HTTP_*`` keys)."""
    return sum(len(k) - 5 + len(environ[k]) for k in environ.keys() - _PROCESS_KEYS if k[:5] == "HTTP_")


def over_limit(environ: dict) -> int | None:
    """414, 431 or None (within the limits)."""
    if len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", "")) > MAX_URL_CHARS:
        return 414
    return 431 if header_bytes(environ) > MAX_HEADER_BYTES else None


_SLASHES = re.compile(r"//+")


def merged_slashes_location(svc: Services, path: str, query: str) -> str:
    """Where a path with duplicate slashes redirects: single slashes, and for a tag route the tag's
    canonical spelling when the name is valid (one hop, not two). Always a path (never ``//host``)."""
    path = _SLASHES.sub("/", path)
    for rep in REPRESENTATIONS:
        if path.startswith(rep.prefix):
            resolved = resolve(path[len(rep.prefix):])
            if resolved is not None:
                path = rep.prefix + resolved.key
            break
    # surrogateescape: bytes of the request path that were not UTF-8 go back out percent-encoded as
    # they came (a property test found ``//`` + such bytes raising here, i.e. a bare 500)
    location = quote(path, safe="/:@!$&'()*+,;=-._~", errors="surrogateescape")
    return location + "?" + query_as_sent(query) if query else location


def query_as_sent(query: str) -> str:
    """The query string's bytes (PEP 3333: latin-1-decoded) for a Location header: printable ASCII
    as is (escapes stay escapes), any other byte percent-encoded once. Written back as the text it
    came as, ``x=é`` went out as its UTF-8 bytes encoded again (``x=Ã©``: issue 21)."""
    return quote(query.encode("latin-1", "replace"), safe="!#$%&'()*+,-./:;=?@[]^_`{|}~")


class TagRouter:
    """WSGI in front of the Flask app: the tag routes go to :func:`answer`, the rest to Flask; the
    ONE header step of every response (:meth:`shared_headers`), the router's and Flask's."""

    def __init__(self, flask_wsgi: Callable, svc: Services):
        self.flask_wsgi = flask_wsgi
        self._svc = svc
        self._security = list(svc.security_headers)
        # public, read-only, no credentials: readable from any origin, as Mastodon's own /api/*
        self._api = self._security + [("Access-Control-Allow-Origin", "*")]

    def shared_headers(self, path: str) -> list[tuple[str, str]]:
        """The headers every response on ``path`` carries (no route sets any of them itself)."""
        return self._api if path.startswith("/api/") else self._security

    def _flask(self, environ: dict, start_response: Callable, path: str) -> Iterable[bytes]:
        shared = self.shared_headers(path)

        def with_shared(status, headers, exc_info=None):
            return start_response(status, headers + shared, exc_info)

        return self.flask_wsgi(environ, with_shared)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if not path.isascii():  # PEP 3333: the path's bytes as latin-1; names are UTF-8
            path = path.encode("latin-1").decode("utf-8", "surrogateescape")
        too_large = over_limit(environ)
        if too_large:
            reply = _error(self._svc, representation_for(path), too_large, None, [("Cache-Control", "no-store")])
        elif "//" in path:
            reply = responses.redirect(merged_slashes_location(self._svc, path, environ.get("QUERY_STRING", "")))
        else:
            for rep in REPRESENTATIONS:
                if path.startswith(rep.prefix):
                    break
            else:
                return self._flask(environ, start_response, path)
            try:
                reply = answer(self._svc, rep, path[len(rep.prefix):], environ)
            except Exception:  # never a stack trace to the client; the log has it
                log.exception("unhandled error on %s", path)
                reply = _error(self._svc, rep, 500, None, [("Cache-Control", "no-store")])
        return reply.send(start_response, self.shared_headers(path), environ.get("REQUEST_METHOD") == "HEAD")


# ---- Flask: health, dev images, errors --------------------------------------------------------
def register(app: Flask, svc: Services) -> None:
    @app.get("/healthz")
    def healthz():
        return Response("ok\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})

    @app.get("/readyz")
    def readyz():
        """A ping through the breaker: 503 at once while the circuit is open (docs/SERVING.md)."""
        try:
            svc.bulkhead.call(svc.breaker.call, svc.store.get().ping)
        except StoreUnavailable as e:
            log.warning("not ready: %s", e)
            return Response(f"store unavailable ({svc.breaker.state})\n", status=503, mimetype="text/plain",
                            headers={"Cache-Control": "no-store", "Retry-After": str(svc.settings.retry_after_seconds)})
        return Response("ready\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})

    @app.get("/api/openapi.json")
    def openapi_document():
        """serving/openapi.json as written (kept true by tests/unit/test_openapi.py and schemathesis)."""
        return Response(OPENAPI_DOCUMENT, mimetype="application/json", headers={"Cache-Control": "public, max-age=300"})

    if svc.settings.dev_images:
        from devstack.devimages import render_png  # dev tooling: not in the production image

        @app.get("/dev-images/<name>.png")
        def dev_image(name: str):
            if not devimages.valid_name(name):
                abort(404)
            return Response(render_png(name), mimetype="image/png", headers={"Cache-Control": "public, max-age=3600"})

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        extra = {k: v for k, v in e.get_headers() if k != "Content-Type"}
        if e.code == 404:
            extra["Cache-Control"] = f"public, max-age={NOT_FOUND_MAX_AGE}"
        return flask_error(svc, e.code or 500, extra)

    @app.errorhandler(Exception)
    def _crash(e: Exception):
        log.exception("unhandled error on %s", request.path)  # never a stack trace to the client
        return flask_error(svc, 500, {"Cache-Control": "no-store"})
