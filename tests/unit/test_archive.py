"""The archive writer (processing-time windows, partitioned by event date) on the local runner."""
from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.options.pipeline_options import PipelineOptions

from hashtags.messages import parse_post_event
from pipelines.streaming import ArchiveEvents

UTC = dt.timezone.utc


def event(post_id, when, event="published"):
    return parse_post_event(json.dumps({
        "event": event, "post_id": post_id, "user_id": "u", "caption": "#a #b",
        "image_url": "https://img/x.jpg", "event_time": when}).encode())


def test_archive_partitions_by_event_date_and_keeps_old_events(tmp_path):
    events = [event("p1", "2026-11-20T23:59:59Z"), event("p2", "2026-11-21T00:00:00Z"),
              event("p1", "2026-11-21T08:00:00Z", "deleted"),
              event("old", "2019-01-01T00:00:00Z")]  # years "late": still archived
    with TestPipeline(options=PipelineOptions([])) as p:
        _ = p | beam.Create(events) | ArchiveEvents(str(tmp_path / "archive"), window_seconds=60)
    files = sorted((tmp_path / "archive").glob("dt=*/*.jsonl"))
    by_day = {}
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            by_day.setdefault(f.parent.name, []).append(json.loads(line))
    assert {d: sorted((e["post_id"], e["event"]) for e in v) for d, v in by_day.items()} == {
        "dt=2026-11-20": [("p1", "published")],
        "dt=2026-11-21": [("p1", "deleted"), ("p2", "published")],
        "dt=2019-01-01": [("old", "published")],
    }
    assert [parse_post_event(json.dumps(e)) for e in by_day["dt=2019-01-01"]] == [events[3]]
    assert not list((tmp_path / "archive").glob(".temp*/*"))  # everything moved out of temp
