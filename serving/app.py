"""App factory: the services (serving/services.py: settings, store, breaker, cache, templates, headers) built once, the
tag routes (serving/views.py) in front of Flask; views.TagRouter adds the security headers to every response."""
from __future__ import annotations

import gc
import hashlib
import os
from pathlib import Path
from typing import Callable

from flask import Response, request

from hashtags.settings import Settings
from serving import trends, views
from serving.access_log import AccessLog
from serving.breaker import Breaker, Bulkhead
from serving.cache import PageCache
from serving.devimages import DEV_IMAGE_ORIGIN
from serving.server import server_config
from serving.services import HashtagsApp, Services, StoreHolder
from serving.trends import TrendingTags

# Threads of the server's pool that store reads may not take while the store is slow (Bulkhead):
# /healthz and cached pages always find one.
RESERVED_THREADS = 2

STATIC_MAX_AGE = 365 * 24 * 3600  # versioned URLs (?v=<content hash>): safe to cache for a year


def content_security_policy(settings: Settings) -> str:
    """Images only from the configured origins (and this origin); no script at all; styles only
    from the static file; no framing. With no origins configured, any https: image is allowed
    (the page never renders a non-https URL)."""
    img = ["'self'", *settings.image_origins] if settings.image_origins else ["'self'", "https:"]
    if settings.dev_images and DEV_IMAGE_ORIGIN in img:
        img.remove(DEV_IMAGE_ORIGIN)
    return "; ".join([
        "default-src 'none'",
        "img-src " + " ".join(img),
        "style-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


def security_headers(settings: Settings) -> tuple[tuple[str, str], ...]:
    return (
        ("Content-Security-Policy", content_security_policy(settings)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    )


def create_app(settings: Settings | None = None, store=None, *, clock: Callable[[], float] | None = None) -> HashtagsApp:
    """The web service. ``settings`` default to ``Settings.from_env(os.environ)``; ``store`` is
    anything with ``read_page(key)`` and ``ping()``, and ``read_trends()`` for the trends (default: a BigtableStore built lazily per
    process); ``clock`` (monotonic seconds) drives the page cache and the circuit breaker."""
    settings = settings or Settings.from_env(os.environ)
    timing = {"clock": clock} if clock else {}

    app = HashtagsApp(__name__, static_folder="static", static_url_path="/static")
    app.config.update(
        SEND_FILE_MAX_AGE_DEFAULT=STATIC_MAX_AGE,
        MAX_CONTENT_LENGTH=1024,  # the service takes no request bodies
    )
    app.url_map.merge_slashes = False  # duplicate slashes never reach Flask (views.TagRouter redirects them)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    css = Path(app.static_folder, "site.css").read_bytes()
    app.services = svc = Services(
        settings=settings,
        store=StoreHolder(settings, store),
        cache=PageCache(settings.page_cache_bytes, settings.cache_ttl_seconds, **timing),
        breaker=Breaker(settings.breaker_failures, settings.breaker_cool_down_seconds, **timing),
        bulkhead=Bulkhead(server_config(os.environ).threads - RESERVED_THREADS, **timing),
        trending=TrendingTags(lambda: _trending_entries(svc), settings.trends_cache_seconds, **timing),
        static_version=hashlib.blake2b(css, digest_size=6).hexdigest(),
        security_headers=security_headers(settings),
        page_template=app.jinja_env.get_template("tag.html"),
        error_template=app.jinja_env.get_template("error.html"),
    )

    @app.after_request
    def _static_cache(resp: Response) -> Response:
        # the static route's own policy (versioned URLs); the headers every response carries are
        # added by the router's one header step (views.TagRouter.shared_headers)
        if request.path.startswith("/static/"):
            resp.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE}, immutable"
        return resp

    views.register(app, svc)
    trends.register(app, svc)
    app.wsgi_app = views.TagRouter(app.wsgi_app, svc)
    if settings.access_log:  # outermost: every response, the router's included
        app.wsgi_app = AccessLog(app.wsgi_app, settings.project)
    return app


def _trending_entries(svc: Services) -> tuple:
    """The shown trends for the tag pages' mark; none from a store that has no trends (a store
    with only ``read_page`` and ``ping``, as benches and outage tests pass)."""
    return trends.shown_entries(svc) if hasattr(svc.store.get(), "read_trends") else ()


def tune_gc() -> None:
    """A production worker's collector, set once its app is built: ``gc.freeze()`` and a first-generation threshold of 50,000
    allocations (``PYTHON_GC_GEN0``; 0 keeps Python's 700), since 10,000 cached pages are ~2 M
    tracked objects (docs/BENCHMARKS.md "HTTP serving", the GC row)."""
    gc.freeze()
    raw = os.environ.get("PYTHON_GC_GEN0", "").strip()
    gen0 = int(raw) if raw else 50_000
    if gen0 > 0:
        gc.set_threshold(gen0, 20, 100)
