"""WSGI entry point ``serving.wsgi:app``, served by ``python -m serving.server`` (granian).

Configuration comes from ``HASHTAGS_*`` environment variables (hashtags.settings.Settings). Granian
imports this module in each worker process after forking it, so the Bigtable client (created lazily
by the first request) and the garbage-collector settings below belong to that worker.

``prepare(app)`` is what production adds around ``create_app()`` (tests that run an app with an
in-memory store through the real server call it too): the garbage collector. ``gc.freeze()`` moves
the import-time objects out of the collector's way and the first-generation threshold goes from 700
to 50,000 allocations (``PYTHON_GC_GEN0``; 0 keeps Python's default). A worker keeps up to 10,000
cached pages of ~200 small objects each (~2 M tracked objects) and an uncached request allocates a
few hundred: with the defaults the collector runs every couple of requests and a full pass walks
every cached page (measured in-process over 10,000 tags: 8 full collections per 12,000 requests and
0.1-0.25 ms more CPU per uncached request than with these settings). The request size limits are
part of ``create_app`` (serving/request_limits.py).
"""
import gc
import os

from flask import Flask

from hashtag_ops import logs
from serving import create_app


def tune_gc() -> None:
    gc.freeze()
    raw = os.environ.get("PYTHON_GC_GEN0", "").strip()
    gen0 = int(raw) if raw else 50_000
    if gen0 > 0:
        gc.set_threshold(gen0, 20, 100)


def prepare(app: Flask) -> Flask:
    tune_gc()
    return app


logs.setup("web")  # JSON lines for Cloud Logging on Cloud Run (K_SERVICE), text locally
app = prepare(create_app())
