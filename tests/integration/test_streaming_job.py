"""The real streaming job (BundleBasedDirectRunner, subprocess) on the Pub/Sub and Bigtable emulators.

Publishes > 2,000 generated post events (with deletes and malformed messages) and top-posts lists,
then checks every tag's total against the generator's exact expectation, the DLQ, the archive,
and that a stale top-posts list never replaces a newer one."""
from __future__ import annotations

import datetime as dt
import glob
import json
import time
from pathlib import Path

import pytest

from devstack import loadgen
from hashtag_store import BigtableStore
from hashtags import archive as archive_layout
from hashtags import settings as hs
from hashtags.settings import Settings
from tests.conftest import INSTANCE
from tests.integration.local_job import streaming_jobs, wait_for, wait_for_messages

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
PROJECT = "stream-hashtags"


@pytest.fixture(scope="module")
def job(bigtable_emulator, pubsub_emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streaming")
    s = Settings(project=PROJECT, bigtable_instance=INSTANCE, table="streamed")
    with streaming_jobs(s, tmp, pubsub_emulator, bigtable_emulator) as jobs:
        yield s, tmp, jobs.post_events, jobs.post_events_log


def test_counts_dlq_archive_and_top_posts(job):
    s, tmp, proc, log = job
    started = dt.datetime.now(dt.timezone.utc)
    exp = loadgen.Expected()
    msgs = list(loadgen.generate(2400, seed=7, deletes=0.06, malformed=0.03, expected=exp,
                                 spread_minutes=90))
    assert exp.published > 2000 and exp.deleted > 100 and exp.malformed > 40
    loadgen.publish(msgs, s.project, s.post_events_topic, progress=False)

    store = BigtableStore(s.project, s.bigtable_instance, s.table)
    tags = sorted(exp.counts)

    def totals_match():
        assert proc.poll() is None, "streaming job died"
        got = {t: (d.total_posts if (d := store.read_page(t)) else None) for t in tags}
        wrong = {t: (got[t], exp.counts[t]) for t in tags if got[t] != exp.counts[t]}
        return not wrong, dict(list(wrong.items())[:5])

    wait_for(totals_match, 720,  # a liveness bound: 241 s alone (2026-12-08); CI runs the DAG suite beside it
             "every tag's total to equal the generator's count", log)
    # exact, for every tag the generator used (including net-zero ones)
    assert sum(store.read_page(t).total_posts for t in tags) == sum(exp.counts.values())

    # Dead letters: every malformed message, each with a reason and its original payload
    dead = wait_for_messages(s.project, hs.POST_EVENTS_DLQ_SUBSCRIPTION, exp.malformed, 60, "dead letters")
    assert len(dead) == exp.malformed
    assert all(m.attributes["dlq_reason"] and m.attributes["dlq_source"] == "post-events" for m in dead)
    malformed_payloads = sorted(m.data for m in msgs if m.kind == "malformed")
    assert sorted(m.data for m in dead) == malformed_payloads

    # Top posts: a list, then a STALE one published afterwards: the newer stays
    top_tag = exp.counts.most_common(1)[0][0]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    new, = loadgen.top_posts_messages(exp, [top_tag], computed_at=now)
    loadgen.publish([new], s.project, s.top_posts_topic, progress=False)
    expected_ids = [p["post_id"] for p in json.loads(new)["posts"]]
    wait_for(lambda: ((d := store.read_page(top_tag)) is not None and
                      [p.post_id for p in d.top_posts] == expected_ids, None), 60, "top posts", log)
    stale = json.loads(new)
    stale["computed_at"] = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stale["posts"] = stale["posts"][:3]
    bad = {"hashtag": top_tag, "computed_at": "2026-01-01T00:00:00Z",
           "posts": [{"post_id": "x", "image_url": "javascript:alert(1)"}]}
    loadgen.publish([json.dumps(stale).encode(), json.dumps(bad).encode()], s.project, s.top_posts_topic,
                    progress=False)
    top_dead = wait_for_messages(s.project, hs.TOP_POSTS_DLQ_SUBSCRIPTION, 1, 60, "top-posts dead letter")
    assert len(top_dead) == 1 and "https" in top_dead[0].attributes["dlq_reason"]
    time.sleep(3)  # the stale message went through the same pipe as the rejected one
    doc = store.read_page(top_tag)
    assert len(doc.top_posts) == 100
    assert [p.post_id for p in doc.top_posts] == expected_ids
    assert doc.total_posts == exp.counts[top_tag]

    # ... and what the JSON API serves from that row (the real store behind the Flask app)
    from serving import create_app

    client = create_app(s, store=store).test_client()
    resp = client.get(f"/api/tags/{top_tag}")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["hashtag"] == top_tag and body["total_posts"] == exp.counts[top_tag]
    assert [p["post_id"] for p in body["top_posts"]] == expected_ids
    assert client.get("/api/tags/nosuchtagatall").status_code == 404

    # Archive: every valid event once, under the UTC day it ARRIVED (today), readable by the recount
    valid = sorted(m.data for m in msgs if m.kind != "malformed")

    def archive_files():
        return [Path(f) for pattern in archive_layout.partition_glob(str(tmp / "archive"))
                for f in glob.glob(pattern)]

    def archived():
        lines = [line for f in archive_files() for line in f.read_bytes().split(b"\n") if line]
        ok = len(lines) == exp.published + exp.deleted
        return ok, (lines if ok else len(lines))

    lines = wait_for(archived, 180, "the archive to hold every valid event", log)
    assert {archive_layout.partition_day(str(f)) for f in archive_files()} <= {
        started.date(), dt.datetime.now(dt.timezone.utc).date()}
    assert sorted(loadgen_key(json.loads(line)) for line in lines) == sorted(
        loadgen_key(json.loads(d)) for d in valid)
    assert not [f for f in (tmp / "archive" / archive_layout.TEMP_FOLDER).rglob("*") if f.is_file()]


def loadgen_key(event: dict) -> tuple:
    """What identifies a generated event (the archive re-encodes it: same fields, not the same bytes)."""
    return (event["event"], event["post_id"], event["caption"])
