"""App factory: configuration, the store (built lazily, once per process), caching, headers."""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from flask import Flask, Response, request

from hashtags.settings import Settings
from serving.cache import PageCache
from serving.devimages import DEV_IMAGE_ORIGIN

log = logging.getLogger(__name__)

STATIC_MAX_AGE = 365 * 24 * 3600  # versioned URLs (?v=<content hash>): safe to cache for a year


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class StoreHolder:
    """Creates the BigtableStore on first use, in the process that uses it.

    gRPC channels do not survive fork(): gunicorn imports the app in the master and forks workers,
    so the client must be created after the fork, by the first request of each worker."""

    def __init__(self, settings: Settings, store=None):
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()

    def get(self):
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from hashtag_store import BigtableStore

                    s = self._settings
                    self._store = BigtableStore(s.project, s.bigtable_instance, s.table,
                                                app_profile=s.app_profile)
        return self._store


def content_security_policy(settings: Settings, dev_images: bool) -> str:
    """Images only from the configured origins (and this origin); no script at all; styles only
    from the static file; no framing. With no origins configured, any https: image is allowed
    (the page never renders a non-https URL)."""
    img = ["'self'", *settings.image_origins] if settings.image_origins else ["'self'", "https:"]
    if dev_images and DEV_IMAGE_ORIGIN in img:
        img.remove(DEV_IMAGE_ORIGIN)
    return "; ".join([
        "default-src 'none'",
        "img-src " + " ".join(img),
        "style-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def create_app(settings: Settings | None = None, store=None, *, dev_images: bool | None = None,
               clock=None) -> Flask:
    """The web service.

    ``settings`` default to ``Settings.from_env(os.environ)``; ``store`` is anything with
    ``read_page(key)`` and ``ping()`` (default: a BigtableStore built lazily per process);
    ``dev_images`` (default: env ``HASHTAGS_DEV_IMAGES=1``) serves generated images for the local
    stack's ``https://img.hashtags.test/`` URLs; ``clock`` is injectable for cache tests."""
    settings = settings or Settings.from_env(os.environ)
    if dev_images is None:
        dev_images = _env_flag("HASHTAGS_DEV_IMAGES")

    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config.update(
        SEND_FILE_MAX_AGE_DEFAULT=STATIC_MAX_AGE,
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=1024,  # the service takes no request bodies
    )
    app.url_map.merge_slashes = False  # /tags//x is no tag: a 404, not a redirect
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.json.ensure_ascii = False
    app.json.compact = True

    cache_args = {"clock": clock} if clock else {}
    app.extensions["hashtags"] = {
        "settings": settings,
        "store": StoreHolder(settings, store),
        "cache": PageCache(settings.cache_max_entries, settings.cache_ttl_seconds, **cache_args),
        "dev_images": dev_images,
    }

    css = Path(app.static_folder, "site.css").read_bytes()
    static_version = hashlib.blake2b(css, digest_size=6).hexdigest()
    csp = content_security_policy(settings, dev_images)
    security_headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }

    app.extensions["hashtags"]["static_version"] = static_version

    @app.context_processor
    def _template_globals():
        return {"static_version": static_version}

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.update(security_headers)
        if request.path.startswith("/static/"):
            resp.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}, immutable"
        return resp

    from serving import views

    from serving.fastpath import FastPath

    ext = app.extensions["hashtags"]
    ext["page_template"] = app.jinja_env.get_template("tag.html")
    ext["render"] = {"html": views.html_renderer(ext), "json": views.render_json}
    app.wsgi_app = FastPath(app.wsgi_app, app.extensions["hashtags"], security_headers)
    app.register_blueprint(views.bp)
    views.register_error_handlers(app)
    if dev_images:
        app.register_blueprint(views.dev_bp)
    return app
