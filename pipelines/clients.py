"""One Bigtable and one Pub/Sub client per worker process, shared by every DoFn instance in it.

The BundleBasedDirectRunner (the local stack, the tests' jobs) calls a DoFn's ``setup`` and
``teardown`` around EVERY bundle, on a fresh unpickled copy (Beam 2.77,
runners/direct/transform_evaluator.py ``_ParDoEvaluator.start_bundle``/``finish_bundle``), and it
runs one bundle per key and firing. A DoFn that opens its client in ``setup`` therefore opened a
gRPC channel per bundle: counted on test_streaming_job's 2,400 events, ~2,000 bundles of the trend
scoring step, ~300 of each Bigtable writer and ~800 of the dead-letter writer (the runner schedules
the Flatten's empty bundles too), each opening a client; the job fell behind the tests' traffic.

Dataflow reuses a DoFn instance across bundles, so there setup runs once per instance; sharing one
client per process across the worker's threads is what Google's clients are made for (a channel is
thread-safe; the classic Bigtable client's ``MutationsBatcher`` stays per bundle). Beam's
``apache_beam.utils.shared.Shared`` would not do here: it keeps its object only while a DoFn holds
it, and the local runner drops every DoFn after its bundle. The clients live as long as the process.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_cache: dict[tuple, object] = {}


def shared(key: tuple, make: Callable[[], T]) -> T:
    """The process's object for ``key``, made once by ``make`` (thread-safe)."""
    try:
        return _cache[key]  # type: ignore[return-value]
    except KeyError:
        pass
    with _lock:
        if key not in _cache:
            _cache[key] = make()
        return _cache[key]  # type: ignore[return-value]


def bigtable_table(project_id: str, instance_id: str, table_id: str, app_profile_id: str | None):
    """The classic client's Table (for MutationsBatcher) through ``app_profile_id``."""
    def make():
        from google.cloud import bigtable

        client = bigtable.Client(project=project_id)
        return client.instance(instance_id).table(table_id, app_profile_id=app_profile_id)

    return shared(("bigtable-table", project_id, instance_id, table_id, app_profile_id), make)


def bigtable_store(bt: dict, app_profile: str | None, read_timeout: float):
    """A ``hashtag_store.BigtableStore`` over ``bt`` (project_id/instance_id/table_id) for the jobs' reads."""
    def make():
        from hashtag_store import BigtableStore

        return BigtableStore(bt["project_id"], bt["instance_id"], bt["table_id"], app_profile=app_profile,
                             read_timeout=read_timeout)

    return shared(("bigtable-store", bt["project_id"], bt["instance_id"], bt["table_id"], app_profile,
                   read_timeout), make)


def publisher():
    """The local runner's Pub/Sub publisher (dead letters; see streaming_main.write_dead_letters)."""
    def make():
        from google.cloud import pubsub_v1

        return pubsub_v1.PublisherClient()

    return shared(("publisher",), make)
