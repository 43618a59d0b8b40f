"""WSGI entry point ``serving.wsgi:app`` (``python -m serving.server``), configured by ``HASHTAGS_*``
variables (hashtags.settings.Settings) and imported by granian in each worker after the fork.
Importing it sets up the process's logging and builds the app: factories (tests, benchmarks) use
``serving.app.create_app`` and ``tune_gc`` instead.
"""
from hashtag_ops import logs
from serving.app import create_app, tune_gc

logs.setup("web")  # JSON lines for Cloud Logging on Cloud Run (K_SERVICE), text locally
app = create_app()
tune_gc()
