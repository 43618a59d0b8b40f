"""The services every request uses, built once per process by :func:`serving.app.create_app`
(``app.services``). Its own module so that the routes (serving/views.py and the others) and the app
factory import it rather than each other."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask
from jinja2 import Template

from hashtags.settings import Settings
from serving.breaker import Breaker, Bulkhead
from serving.cache import PageCache
from serving.trends import TrendingTags


class StoreHolder:
    """The BigtableStore, created by the first request of each worker process (a gRPC channel does
    not survive fork(), and importing the app needs no credentials)."""

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
                                                app_profile=s.app_profile,
                                                batches_in_flight=s.read_batches_in_flight)
        return self._store


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request needs, built once by :func:`create_app` (``app.services``)."""

    settings: Settings
    store: StoreHolder
    cache: PageCache
    breaker: Breaker
    bulkhead: Bulkhead  # the threads store reads may hold while the store is slow
    trending: TrendingTags  # serving/trends.py: the tag pages' "Trending" mark
    static_version: str  # content hash of site.css, for its versioned URL
    security_headers: tuple[tuple[str, str], ...]
    page_template: Template
    error_template: Template


class HashtagsApp(Flask):
    services: Services
