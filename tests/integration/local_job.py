"""Helpers for the tests that run the real streaming job on the emulators (subprocesses on the
BundleBasedDirectRunner): start both per-source jobs, wait for a condition with the job's log in the
failure message, publish exactly the messages a test builds."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

from devstack import processes
from devstack.resources import ensure_all
from hashtags.settings import Settings


class LocalJobs(NamedTuple):
    post_events: object  # subprocess.Popen
    top_posts: object
    post_events_log: Path
    top_posts_log: Path

    def alive(self) -> bool:
        return self.post_events.poll() is None and self.top_posts.poll() is None


@contextmanager
def streaming_jobs(s: Settings, tmp: Path, pubsub_emulator, bigtable_emulator,
                   early_firing_seconds: int = 2) -> Iterator[LocalJobs]:
    """The resources of ``s`` created, then the two streaming job processes; stopped (by PID) on exit."""
    ensure_all(s)
    env = processes.emulator_env(pubsub_emulator.address, bigtable_emulator.address)
    procs = processes.start_streaming_jobs(s, tmp / "archive", tmp, env, early_firing_seconds=early_firing_seconds)
    try:
        yield LocalJobs(procs[0], procs[1], tmp / "streaming-post-events.log", tmp / "streaming-top-posts.log")
    finally:
        for proc in procs:
            processes.stop(proc)


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    """Poll ``predicate() -> (ok, last)`` every second until ok; returns ``last``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"timed out waiting for {what}; last: {last}\n{tail}")


def publish_in_order(project: str, topic: str, messages) -> None:
    """Publish ``(data, attributes)`` pairs one request each, in order, through the raw Publish RPC (the
    high-level ``publish(topic, data, **attributes)`` cannot send attributes named like its own
    parameters, e.g. ``ordering_key`` or ``topic``, which a hostile publisher can)."""
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    path = client.topic_path(project, topic)
    for data, attributes in messages:
        client.api.publish(topic=path, messages=[{"data": data, "attributes": attributes or {}}])
