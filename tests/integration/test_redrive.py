"""Dead-letter redrive on the emulators (issue 10): a post event that the running job version
rejects (its event-time floor is tighter) lands on the DLQ; the next job version (relaunched with
the default floor, in a new count generation) accepts it once it is redriven; the tag's total is
then exactly +1, the republished message is byte- and attribute-identical to the original, and a
second redrive finds nothing.

Both job versions are stopped with SIGTERM (tests/integration/local_job.stop_jobs), as the local
stack's restart was measured (LOCAL-GCP.md); the redrive tool pulls with its own short deadline
(hashtag_ops.redrive.PULL_DEADLINE_SECONDS: with a 30 s one, each of its quiet periods cost ~29 s
on the emulator)."""
from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devstack import processes
from devstack.resources import ensure_all, streaming_args
from hashtag_ops.redrive import Selection, redrive
from hashtag_store import BigtableStore
from hashtags import messages
from hashtags import settings as hs
from hashtags.settings import Settings
from tests.conftest import INSTANCE
from tests.integration.local_job import drain, publish_in_order, stop_jobs, wait_for

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
PROJECT = "redrive-hashtags"
ROOT = Path(__file__).resolve().parents[2]


def start_post_events_job(s: Settings, tmp: Path, env: dict, name: str, *extra: str):
    """The real streaming job (post-events only) with extra options; stopped by PID by the caller."""
    log = tmp / f"{name}.log"
    args = [sys.executable, "-m", "pipelines.streaming_main",
            *streaming_args(s, str(tmp / "archive"), early_firing_seconds=2, read="post-events"), *extra]
    with open(log, "ab") as f:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return proc, log


def event(post_id: str, caption: str, when: dt.datetime) -> tuple[bytes, dict]:
    t = messages.format_time(when)
    body = {"event": "published", "post_id": post_id, "user_id": "u1", "caption": caption,
            "image_url": f"https://img.example/{post_id}.jpg", "event_time": t, "event_id": post_id + "-pub"}
    return json.dumps(body).encode(), {"event_time": t, "event_id": post_id + "-pub", "origin": "loadtest"}


def test_a_dead_letter_a_later_version_accepts_is_redriven_and_counted_exactly_once(
        pubsub_emulator, bigtable_emulator, tmp_path):
    from google.cloud import pubsub_v1

    s = Settings(project=PROJECT, bigtable_instance=INSTANCE, table="t" + uuid.uuid4().hex[:10])
    ensure_all(s)
    subscriber = pubsub_v1.SubscriberClient()
    tap = s.subscription_path("tap-" + uuid.uuid4().hex[:8])  # sees every message published to post-events
    subscriber.create_subscription(request={"name": tap, "topic": s.topic_path(s.post_events_topic)})
    dlq = s.subscription_path(hs.POST_EVENTS_DLQ_SUBSCRIPTION)
    env = processes.emulator_env(pubsub_emulator.address, bigtable_emulator.address)
    store = BigtableStore(s.project, s.bigtable_instance, s.table)
    tag = "redrive" + uuid.uuid4().hex[:6]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    kept = event("p-kept", f"counted at once #{tag}", now - dt.timedelta(minutes=20))
    rejected = event("p-late", f"rejected by v1 #{tag}", now - dt.timedelta(hours=3))

    def total():
        doc = store.read_page(tag)
        return doc.total_posts if doc else None

    redrive_subscriber = pubsub_v1.SubscriberClient()  # the tool's own pulls, as an operator runs it

    def quiet_redrive(selection, dry_run=False):
        return redrive(dlq, selection, settings=s, dry_run=dry_run, subscriber=redrive_subscriber,
                       out=io.StringIO(), quiet_seconds=1.0)

    # v1: events before now - 1 h are dead letters
    v1, v1_log = start_post_events_job(s, tmp_path, env, "v1",
                                       f"--event_time_floor={messages.format_time(now - dt.timedelta(hours=1))}")
    try:
        publish_in_order(s.project, s.post_events_topic, [kept, rejected])
        wait_for(lambda: (total() == 1, total()), 240, "v1 to count the kept event", v1_log)
        seen = wait_for(lambda: ((o := quiet_redrive(Selection(everything=True), dry_run=True)).read >= 1, o),
                        120, "the rejected event on the DLQ", v1_log)
        assert seen.read == 1 and seen.republished == 0 and "before the floor" in seen.report
    finally:
        stop_jobs([v1])
    assert total() == 1

    # v2: the later version accepts it (default floor); a relaunch, so a new count generation
    v2, v2_log = start_post_events_job(s, tmp_path, env, "v2", "--count_generation=1")
    try:
        first = quiet_redrive(Selection(reasons=("BEFORE THE FLOOR",)))
        assert (first.read, first.selected, first.republished, first.skipped, first.failed) == (1, 1, 1, 0, 0)
        wait_for(lambda: (total() == 2, total()), 240, "v2 to count the redriven event", v2_log)
        second = quiet_redrive(Selection(everything=True))
        assert (second.read, second.republished) == (0, 0)
        assert total() == 2
    finally:
        stop_jobs([v2])
        redrive_subscriber.close()

    tapped = [m for m in drain(s.project, tap) if m.attributes.get("event_id") == "p-late-pub"]
    subscriber.close()
    assert len(tapped) == 2  # the original and the redriven copy, identical
    assert [(m.data, dict(m.attributes)) for m in tapped] == [(rejected[0], rejected[1])] * 2
