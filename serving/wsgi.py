"""WSGI entry point ``serving.wsgi:app`` (``python -m serving.server``), configured by ``HASHTAGS_*``
variables (hashtags.settings.Settings) and imported by granian in each worker after the fork.
``prepare(app)`` is what production adds around ``create_app()``: ``gc.freeze()`` and a
first-generation threshold of 50,000 allocations (``PYTHON_GC_GEN0``; 0 keeps Python's 700), since
10,000 cached pages are ~2 M tracked objects (docs/BENCHMARKS.md "HTTP serving", the GC row).
"""
import gc
import os

from flask import Flask

from hashtag_ops import logs
from serving import create_app


def prepare(app: Flask) -> Flask:
    gc.freeze()
    raw = os.environ.get("PYTHON_GC_GEN0", "").strip()
    gen0 = int(raw) if raw else 50_000
    if gen0 > 0:
        gc.set_threshold(gen0, 20, 100)
    return app


logs.setup("web")  # JSON lines for Cloud Logging on Cloud Run (K_SERVICE), text locally
app = prepare(create_app())
