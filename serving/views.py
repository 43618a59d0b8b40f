"""Routes: the tag page, its JSON twin, health checks, dev images."""
from __future__ import annotations

import functools
import json
import logging
import re
from urllib.parse import quote

from markupsafe import Markup, escape

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from hashtag_store import StoreUnavailable
from hashtags.layout import PageDocument
from hashtags.messages import is_https_url
from hashtags.settings import MAX_URL_LENGTH
from serving import devimages
from serving.cache import Body, Entry
from serving.format import exact_posts_label, posts_label
from serving.responses import HTML, JSON, accepts_gzip, not_modified, page_headers
from serving.names import quote_key, resolve

log = logging.getLogger(__name__)

bp = Blueprint("tags", __name__)
dev_bp = Blueprint("dev_images", __name__)

EAGER_TILES = 12
"""Tiles loaded eagerly (the rest ``loading=lazy``). 12 = the first 4 rows of the 3-column phone
grid (a 390×844 screen shows ~5 rows under the header) and the first 2–3 rows of the 4/5-column
desktop grid (1280×800 shows ~3 rows): what is on the first screen starts loading before layout,
the first with ``fetchpriority=high`` (the largest contentful paint candidate)."""
TILE_SIZE = 320  # intrinsic width/height attributes: the grid scales tiles, aspect-ratio stays 1:1
REDIRECT_MAX_AGE = 86_400
NOT_FOUND_MAX_AGE = 10


def _ext():
    return current_app.extensions["hashtags"]


# ---- rendering ------------------------------------------------------------------------------
# Plain, valid https URLs of the usual shape are accepted without urlsplit (100 per page); anything
# else goes through hashtags.messages.is_https_url. Everything this accepts, that accepts too
# (checked by a property test), so the rule stays the domain's.
_PLAIN_HTTPS = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%!$&()*+,;=:@/-]*)?"
                          r"(?:\?[A-Za-z0-9._~%!$&()*+,;=:@/?-]*)?")
_TILE = '<li><a href="{}"><img src="{}" alt="Post {}" width="{}" height="{}"{}></a></li>\n'
# The same checks over a whole page at once: the URLs (or ids) joined by newlines, which neither
# pattern accepts, so the joined string matches iff every item does (one regex call, not 200).
_ALL_PLAIN_HTTPS = re.compile(rf"(?:{_PLAIN_HTTPS.pattern})(?:\n(?:{_PLAIN_HTTPS.pattern}))*")
_FIRST = ' fetchpriority="high"'
_LAZY = ' loading="lazy" decoding="async"'


def renderable_image(url: str) -> bool:
    if len(url) <= MAX_URL_LENGTH and _PLAIN_HTTPS.fullmatch(url):
        return True
    return is_https_url(url)


_SAFE_ID = re.compile(r"[A-Za-z0-9_.~-]+")  # characters quote(x, safe="") leaves as they are
_ALL_SAFE_IDS = re.compile(r"[A-Za-z0-9_.~-]+(?:\n[A-Za-z0-9_.~-]+)*")


@functools.lru_cache(maxsize=8)
def _href_parts(post_url_template: str) -> tuple[str, str] | None:
    """The configured post URL pattern split around ``{post_id}``, each side HTML-escaped once."""
    if post_url_template.count("{post_id}") != 1 or post_url_template.count("{") != 1:
        return None
    prefix, suffix = post_url_template.split("{post_id}")
    return str(escape(prefix)), str(escape(suffix.replace("}}", "}")))


def tiles_html(doc: PageDocument, post_url_template: str, dev_images: bool) -> Markup:
    """The tiles, every value escaped: non-https image URLs are dropped whatever the table holds;
    post ids are percent-encoded into the configured URL pattern.

    Built in Python rather than a template loop (a third of the render cost), with shortcuts that
    give the same bytes as ``markupsafe.escape`` (checked by a property test against
    :func:`tiles_html_reference`): a URL matching ``_PLAIN_HTTPS`` can only contain ``&`` among
    the characters HTML escapes; a post id made of unreserved characters is its own
    percent-encoding and needs no escaping."""
    parts_ = _href_parts(post_url_template)
    if parts_ is None:
        return tiles_html_reference(doc, post_url_template, dev_images)
    prefix, suffix = parts_
    posts = doc.top_posts
    if posts and not dev_images:
        urls = "\n".join([p.image_url for p in posts])
        if (_ALL_PLAIN_HTTPS.fullmatch(urls) and _ALL_SAFE_IDS.fullmatch("\n".join([p.post_id for p in posts]))
                and max([len(p.image_url) for p in posts]) <= MAX_URL_LENGTH):
            # the common page: every URL plain, every id unreserved → no per-tile checks
            amp = "&" in urls
            a, b = f'"><img src="', f'" alt="Post '
            size = f'" width="{TILE_SIZE}" height="{TILE_SIZE}"'
            return Markup("".join([
                f'<li><a href="{prefix}{p.post_id}{suffix}{a}{p.image_url.replace("&", "&amp;") if amp else p.image_url}'
                f'{b}{n}{size}{_FIRST if n == 1 else _LAZY if n > EAGER_TILES else ""}></a></li>\n'
                for n, p in enumerate(posts, 1)]))
    parts = []
    for post in posts:
        url = post.image_url
        if len(url) <= MAX_URL_LENGTH and _PLAIN_HTTPS.fullmatch(url):
            src = devimages.rewrite_url(url) if dev_images else url
            src = src.replace("&", "&amp;")
        elif is_https_url(url):
            src = str(escape(devimages.rewrite_url(url) if dev_images else url))
        else:
            continue
        pid = post.post_id
        href = prefix + (pid if _SAFE_ID.fullmatch(pid) else quote(pid, safe="")) + suffix
        n = len(parts) + 1
        parts.append(f'<li><a href="{href}"><img src="{src}" alt="Post {n}" width="{TILE_SIZE}" '
                     f'height="{TILE_SIZE}"{_FIRST if n == 1 else _LAZY if n > EAGER_TILES else ""}></a></li>\n')
    return Markup("".join(parts))


def tiles_html_reference(doc: PageDocument, post_url_template: str, dev_images: bool) -> Markup:
    """The plain version of :func:`tiles_html`: every value through ``markupsafe.escape``."""
    parts = []
    for post in doc.top_posts:
        if not is_https_url(post.image_url):
            continue
        src = devimages.rewrite_url(post.image_url) if dev_images else post.image_url
        n = len(parts) + 1
        href = post_url_template.format(post_id=quote(post.post_id, safe=""))
        parts.append(_TILE.format(escape(href), escape(src), n, TILE_SIZE, TILE_SIZE,
                                  _FIRST if n == 1 else _LAZY if n > EAGER_TILES else ""))
    return Markup("".join(parts))


def render_page(doc: PageDocument, *, stale: bool = False, ext: dict | None = None) -> str:
    """The tag page. Renders the template object directly (no Flask request or app context needed,
    so the WSGI fast path can render a miss too): the template uses only the variables given here."""
    ext = ext or _ext()
    return ext["page_template"].render(
        doc=doc,
        tiles=tiles_html(doc, ext["settings"].post_url_template, ext["dev_images"]),
        count_label=posts_label(doc.total_posts),
        count_exact=exact_posts_label(doc.total_posts),
        stale=stale,
        static_version=ext["static_version"],
    )


def html_renderer(ext: dict):
    def _html(doc: PageDocument | None) -> bytes:
        assert doc is not None
        return render_page(doc, ext=ext).encode("utf-8")
    return _html


def render_json(doc: PageDocument | None) -> bytes:
    assert doc is not None
    return json.dumps(doc.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---- responses ------------------------------------------------------------------------------
def _send(body: Body, mimetype: str, x_cache: str) -> Response:
    settings = _ext()["settings"]
    gz = accepts_gzip(request.headers.get("Accept-Encoding"))
    if not_modified(request.headers.get("If-None-Match"), body):
        return Response(status=304, headers=page_headers(settings, body, gz=gz, mimetype=mimetype,
                                                         x_cache=x_cache, status=304))
    headers = page_headers(settings, body, gz=gz, mimetype=mimetype, x_cache=x_cache, status=200)
    return Response(body.gzip_data if gz else body.data, headers=headers)


def _redirect(path: str) -> Response:
    return Response(status=301, headers={"Location": path, "Cache-Control": f"public, max-age={REDIRECT_MAX_AGE}"})


class Unavailable(Exception):
    pass


LOOKUP_KEY = "hashtags.lookup"
"""WSGI environ key under which the fast path hands the result of its lookup (hit, miss or
:class:`Unavailable`) to the Flask view, so a request it does not answer itself is not read twice."""


def lookup(ext: dict, key: str) -> tuple[Entry, str]:
    """The cache entry for ``key`` and how it was obtained: hit, miss (one row read) or stale.
    Raises :class:`Unavailable` when the store fails and there is no last good copy."""
    cache = ext["cache"]
    entry, fresh = cache.get(key)
    if entry is not None and fresh:
        return entry, "hit"
    try:
        doc = ext["store"].get().read_page(key)
    except StoreUnavailable as e:
        log.warning("store unavailable reading %r: %s", key, e)
        if entry is not None and entry.doc is not None:
            return entry, "stale"
        raise Unavailable() from e
    return cache.put(key, doc), "miss"


def _lookup(key: str) -> tuple[Entry, str]:
    handed = request.environ.pop(LOOKUP_KEY, None)
    if handed is not None and handed[0] == key:
        if isinstance(handed[1], Unavailable):
            raise handed[1]
        return handed[1]
    return lookup(_ext(), key)


def _unavailable(body: bytes, mimetype: str) -> Response:
    retry = str(_ext()["settings"].retry_after_seconds)
    return Response(body, status=503, mimetype=mimetype,
                    headers={"Retry-After": retry, "Cache-Control": "no-store", "X-Cache": "stale"})


@bp.get("/tags/<name>")
def tag_page(name: str):
    resolved = resolve(name)
    if resolved is None:
        abort(404)
    if not resolved.canonical:
        return _redirect("/tags/" + quote_key(resolved.key))
    try:
        entry, how = _lookup(resolved.key)
    except Unavailable:
        return _unavailable(render_template("error.html", status=503, title="Temporarily unavailable",
                                            message="We could not load this page. Please try again in a moment.")
                            .encode("utf-8"), "text/html")
    if entry.doc is None:
        return _not_found_html(resolved.key)
    if how == "stale":
        return _unavailable(render_page(entry.doc, stale=True).encode("utf-8"), "text/html")
    return _send(entry.body("html", _ext()["render"]["html"]), HTML, how)


@bp.get("/api/tags/<name>")
def tag_api(name: str):
    resolved = resolve(name)
    if resolved is None:
        abort(404)
    if not resolved.canonical:
        return _redirect("/api/tags/" + quote_key(resolved.key))
    try:
        entry, how = _lookup(resolved.key)
    except Unavailable:
        return _unavailable(b'{"error":"unavailable"}', "application/json")
    if entry.doc is None:
        resp = Response(json.dumps({"error": "not_found", "hashtag": resolved.key}, ensure_ascii=False),
                        status=404, mimetype="application/json")
        resp.headers["Cache-Control"] = f"public, max-age={NOT_FOUND_MAX_AGE}"
        return resp
    if how == "stale":
        doc = dict(entry.doc.to_json(), stale=True)
        return _unavailable(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                            "application/json")
    return _send(entry.body("json", _ext()["render"]["json"]), JSON, how)


@bp.get("/healthz")
def healthz():
    return Response("ok\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})


@bp.get("/readyz")
def readyz():
    try:
        _ext()["store"].get().ping()
    except StoreUnavailable as e:
        log.warning("not ready: %s", e)
        return Response("store unavailable\n", status=503, mimetype="text/plain",
                        headers={"Cache-Control": "no-store", "Retry-After": str(_ext()["settings"].retry_after_seconds)})
    return Response("ready\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})


@dev_bp.get("/dev-images/<name>.png")
def dev_image(name: str):
    if not devimages.valid_name(name):
        abort(404)
    resp = Response(devimages.render_png(name), mimetype="image/png")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


# ---- errors ---------------------------------------------------------------------------------
def _not_found_html(key: str | None = None) -> Response:
    body = render_template("error.html", status=404, title="Hashtag not found",
                           message=(f"No posts with #{key} yet." if key else "There is no hashtag with that name."))
    resp = Response(body, status=404, mimetype="text/html")
    resp.headers["Cache-Control"] = f"public, max-age={NOT_FOUND_MAX_AGE}"
    return resp


def _is_api() -> bool:
    return request.path.startswith("/api/")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(404)
    def _404(e):
        if _is_api():
            return Response('{"error":"not_found"}', status=404, mimetype="application/json",
                            headers={"Cache-Control": f"public, max-age={NOT_FOUND_MAX_AGE}"})
        return _not_found_html()

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if _is_api():
            return Response(json.dumps({"error": e.name.lower().replace(" ", "_")}), status=e.code,
                            mimetype="application/json")
        return Response(render_template("error.html", status=e.code, title=e.name, message=e.name),
                        status=e.code, mimetype="text/html")

    @app.errorhandler(Exception)
    def _crash(e: Exception):
        # Never a stack trace to the client; the log has it.
        log.exception("unhandled error on %s", request.path)
        if _is_api():
            return Response('{"error":"internal"}', status=500, mimetype="application/json")
        return Response(render_template("error.html", status=500, title="Something went wrong",
                                        message="Something went wrong on our side."), status=500,
                        mimetype="text/html")
