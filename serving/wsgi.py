"""WSGI entry point ``serving.wsgi:app``, served by ``python -m serving.server`` (granian).

Configuration comes from ``HASHTAGS_*`` environment variables (hashtags.settings.Settings). Granian
imports this module in each worker after forking it, so the Bigtable client (created by the first
request) and the collector settings belong to that worker. ``prepare(app)`` is what production adds
around ``create_app()`` (tests serving an in-memory store through the real server call it too):
``gc.freeze()`` and a first-generation threshold of 50,000 allocations (``PYTHON_GC_GEN0``; 0 keeps
Python's 700). A worker holds up to 10,000 cached pages (~2 M tracked objects); with the default the
collector ran every couple of uncached requests and cost 0.1-0.25 ms of CPU each (measured
in-process over 10,000 tags).
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
