"""Issue 19's acceptance through the RUNNING local job and web server (emulators): traffic shaped by
the load generator (a burst of distinct accounts, one account's flood, a tag under the floor) gives
the expected ``/api/v1/trends/tags`` within a few minutes, and the review flow works end to end
with the moderation command.

The web server runs with review required (``HASHTAGS_TRENDS_WITHOUT_REVIEW=false``, production's
setting), so the flow is the on-call one: the job lists candidates as pending, ``moderate pending``
shows them, ``approve`` makes one visible, ``reject`` makes the job drop the other from its next
minute's list. Times: the job scores at minute boundaries of the wall clock (the local reader's
watermark), so a burst is listed within about a minute; the server reads the trends row at most
every ``trends_cache_seconds``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devstack import loadgen
from hashtag_store import BigtableStore
from hashtags import trends
from hashtags.settings import Settings
from tests.conftest import INSTANCE
from tests.integration.local_job import streaming_jobs, wait_for
from tests.integration.web_server import running_server

pytestmark = [pytest.mark.emulator, pytest.mark.slow]
PROJECT = "trends-running"
ROOT = Path(__file__).resolve().parents[2]


def api(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, json.loads(r.read())


def moderate(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "hashtag_ops.moderate", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_burst_trends_a_flood_does_not_and_review_decides_what_is_served(
        bigtable_emulator, pubsub_emulator, tmp_path):
    s = Settings(project=PROJECT, bigtable_instance=INSTANCE, table="trending")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HASHTAGS_")},
           "BIGTABLE_EMULATOR_HOST": bigtable_emulator.address, "HASHTAGS_PROJECT": PROJECT,
           "HASHTAGS_BIGTABLE_INSTANCE": INSTANCE, "HASHTAGS_TABLE": s.table, "PYTHONPATH": str(ROOT)}
    with streaming_jobs(s, tmp_path, pubsub_emulator, bigtable_emulator) as jobs, \
            running_server("serving.app:create_app", log=tmp_path / "server.log", env={
                k: v for k, v in env.items() if k.startswith(("HASHTAGS_", "BIGTABLE_"))}
                | {"HASHTAGS_TRENDS_WITHOUT_REVIEW": "false", "HASHTAGS_TRENDS_CACHE_SECONDS": "2"}) as srv:
        msgs = (loadgen.burst("eclipse", 40) + loadgen.burst("aurora", 12, seed=2)
                + loadgen.flood("spam", 300) + loadgen.burst("quiet", trends.FLOOR - 1, seed=3))
        loadgen.publish(msgs, s.project, s.post_events_topic, progress=False)

        store = BigtableStore(s.project, s.bigtable_instance, s.table)

        def candidates():
            assert jobs.alive(), "a streaming job died"
            out = moderate(env, "pending")
            listed = [line.split("\t")[1] for line in out.splitlines() if line.startswith(("1\t", "2\t", "3\t", "4\t"))]
            row = store.read_trends()
            return listed == ["#eclipse", "#aurora"], (out, row.computed_at, [(e.tag, e.review) for e in row.entries])

        # both bursts are listed, best first, as pending; the flood (one account) and the tag under
        # the floor are not candidates at all. The first list needs two minute boundaries (the
        # burst's minute closes, then the minute it is scored in) and the local runner's delays.
        out, _, _ = wait_for(candidates, 480, "the two bursts as pending trend candidates", jobs.post_events_log)
        assert "40 accounts\t40 posts" in out.splitlines()[0] and "12 accounts\t12 posts" in out.splitlines()[1]
        # nothing reviewed: nothing served (review required)
        assert api(srv.port, "/api/v1/trends/tags") == (200, [])

        moderate(env, "approve", "#Eclipse", "--reason", "a real event", "--by", "oncall")
        moderate(env, "reject", "aurora", "--reason", "spam ring", "--by", "oncall")

        def served():
            assert jobs.alive(), "a streaming job died"
            status, body = api(srv.port, "/api/v1/trends/tags")
            return status == 200 and [t["name"] for t in body] == ["eclipse"], body

        body = wait_for(served, 240, "the approved tag alone on /api/v1/trends/tags", jobs.post_events_log)
        # Mastodon's Tag entity: the days' uses and accounts (the job's live accounts); the burst's
        # minute may straddle midnight UTC, so the two newest days together hold it
        days = body[0]["history"][:2]
        assert sum(int(d["uses"]) for d in days) == 40 and sum(int(d["accounts"]) for d in days) == 40
        assert "spam" not in moderate(env, "pending") and "quiet" not in moderate(env, "pending")

        # the rejected tag leaves the job's list itself (the job reads the flags each minute)
        wait_for(lambda: ("aurora" not in (out := moderate(env, "pending")), out), 180,
                 "the rejected tag out of the candidates", jobs.post_events_log)
