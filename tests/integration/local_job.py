"""Helpers for the tests that run the real streaming job on the emulators (subprocesses on the
BundleBasedDirectRunner): start both per-source jobs, wait for a condition with the job's log in the
failure message, publish exactly the messages a test builds, drain a subscription, stop the jobs.

Two waits that cost these tests minutes, measured on this machine (2026-12-01), and what is done here:

* Stopping: a job asked to stop (SIGTERM or SIGINT) finishes its pull in flight (at most 5 s:
  pipelines/local_reader.py) and flushes before it exits, so two processes stopped one after the
  other cost that twice. :func:`stop_jobs` signals every process group at once.
* The Pub/Sub emulator answers an empty synchronous pull only about 1 s before the request's
  deadline (a 2 s deadline returned after 1.0 s, 5 s after 4.0 s, 30 s after 29.1 s), where real
  Pub/Sub answers an empty pull at once. :func:`drain` pulls with a short
  deadline, so "no message for N seconds" takes N seconds, not one 10-30 s pull.
"""
from __future__ import annotations

import signal
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
        stop_jobs(procs)


def stop_jobs(procs, timeout: float = 10) -> None:
    """SIGTERM each job's process group (all at once), SIGKILL what is left after ``timeout`` s.
    For a job whose stop is not itself tested: SIGTERM makes a local job flush and exit
    (pipelines/local_reader.py), which ``timeout`` may cut short; the drill in
    test_generations.py tests the clean stop."""
    processes.stop_all(procs, ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)))


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


PULL_DEADLINE = 2.0  # seconds: the emulator answers an empty pull ~1 s before it (module doc)


def short_pull(client, request: dict, timeout: float | None = None):
    """One synchronous pull with the deadline capped at PULL_DEADLINE; a deadline passed with no
    answer is an empty answer (what it means for a pull)."""
    from google.api_core import exceptions as gexc
    from google.pubsub_v1 import PullResponse

    try:
        return client.pull(request=request, timeout=min(timeout or PULL_DEADLINE, PULL_DEADLINE))
    except gexc.DeadlineExceeded:
        return PullResponse()


def drain(project: str, subscription: str, quiet_seconds: float = 3.0) -> list:
    """Every message on ``subscription`` (a name in ``project`` or a full path), acknowledged: pull
    until none came for ``quiet_seconds``, with short pulls (the emulator holds an empty pull until
    about 1 s before its deadline)."""
    from hashtag_ops.pubsub_client import subscriber_client

    client = subscriber_client()  # dead letters may be up to 10 MB: no 4 MiB receive limit
    path = subscription if subscription.startswith("projects/") else client.subscription_path(project, subscription)
    out = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < quiet_seconds:
            resp = short_pull(client, {"subscription": path, "max_messages": 500})
            if resp.received_messages:
                out.extend(m.message for m in resp.received_messages)
                client.acknowledge(request={"subscription": path,
                                            "ack_ids": [m.ack_id for m in resp.received_messages]})
                quiet_since = time.monotonic()
    finally:
        client.close()
    return out


def wait_for_messages(project: str, subscription: str, count: int, timeout: float, what: str,
                      log: Path | None = None, quiet_seconds: float = 3.0) -> list:
    """Drain ``subscription`` until at least ``count`` messages came; every drained message is kept
    (a drain that caught only part of them loses nothing), and the last drain ended with
    ``quiet_seconds`` without a message, so an extra one published by then is in the result. The
    caller asserts the exact number."""
    got: list = []

    def enough():
        got.extend(drain(project, subscription, quiet_seconds))
        return len(got) >= count, len(got)

    wait_for(enough, timeout, what, log)
    return got
