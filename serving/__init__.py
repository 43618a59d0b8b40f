"""The hashtag web service: ``GET /tags/<name>`` (HTML), ``GET /api/tags/<name>`` (JSON), health.

``create_app(settings=None, store=None)`` is the app factory; ``serving.wsgi:app`` is what the
server runs everywhere (``python -m serving.server``: granian, serving/server.py).
"""
from serving.app import create_app

__all__ = ["create_app"]
