"""Routes: the tag page, its JSON twin, health checks, dev images."""
from __future__ import annotations

import json
import logging
from urllib.parse import quote

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from hashtag_store import StoreUnavailable
from hashtags.layout import PageDocument
from hashtags.messages import is_https_url
from serving import devimages
from serving.cache import Body, Entry
from serving.format import exact_posts_label, posts_label
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
def _tiles(doc: PageDocument, dev_images: bool) -> list[tuple[str, str]]:
    """(post href, image src) for each renderable post: non-https image URLs are dropped here,
    whatever the table holds; post ids are percent-encoded into the configured URL pattern."""
    template = _ext()["settings"].post_url_template
    tiles = []
    for post in doc.top_posts:
        if not is_https_url(post.image_url):
            continue
        src = devimages.rewrite_url(post.image_url) if dev_images else post.image_url
        tiles.append((template.format(post_id=quote(post.post_id, safe="")), src))
    return tiles


def render_page(doc: PageDocument, *, stale: bool = False) -> str:
    return render_template(
        "tag.html",
        doc=doc,
        tiles=_tiles(doc, _ext()["dev_images"]),
        count_label=posts_label(doc.total_posts),
        count_exact=exact_posts_label(doc.total_posts),
        eager=EAGER_TILES,
        size=TILE_SIZE,
        stale=stale,
    )


def _html(doc: PageDocument | None) -> bytes:
    assert doc is not None
    return render_page(doc).encode("utf-8")


def _json(doc: PageDocument | None) -> bytes:
    assert doc is not None
    return json.dumps(doc.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---- responses ------------------------------------------------------------------------------
def _cache_control() -> str:
    s = _ext()["settings"]
    return f"public, max-age={s.browser_max_age}, stale-while-revalidate={s.stale_while_revalidate}"


def _wants_gzip() -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "") and request.accept_encodings["gzip"] > 0


def _send(body: Body, mimetype: str, x_cache: str) -> Response:
    use_gzip = _wants_gzip()
    etag = body.gzip_etag if use_gzip else body.etag
    headers = {"Cache-Control": _cache_control(), "Vary": "Accept-Encoding", "X-Cache": x_cache}
    inm = request.if_none_match
    if inm and (inm.contains(body.etag) or inm.contains(body.gzip_etag) or inm.star_tag):
        resp = Response(status=304, headers=headers)
    else:
        resp = Response(body.gzip_data if use_gzip else body.data, mimetype=mimetype, headers=headers)
        if use_gzip:
            resp.headers["Content-Encoding"] = "gzip"
    resp.set_etag(etag)
    return resp


def _redirect(path: str) -> Response:
    resp = Response(status=301, headers={"Location": path, "Cache-Control": f"public, max-age={REDIRECT_MAX_AGE}"})
    return resp


class Unavailable(Exception):
    pass


def _lookup(key: str) -> tuple[Entry, str]:
    """The cache entry for ``key`` and how it was obtained: hit, miss (one row read) or stale."""
    ext = _ext()
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
    return _send(entry.body("html", _html), "text/html", how)


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
    return _send(entry.body("json", _json), "application/json", how)


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
