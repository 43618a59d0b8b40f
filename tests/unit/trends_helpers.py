"""Helpers of the trends TestStream tests (tests/unit/test_trends_stream.py,
tests/integration/test_trends_relaunch.py): post-event messages and watermark steps."""
from __future__ import annotations

import datetime as dt
import json

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

UTC = dt.timezone.utc
DAY = dt.datetime(2026, 11, 23, tzinfo=UTC)
NOON = DAY + dt.timedelta(hours=12)


def msg(post_id: str, user: str, caption: str, at: dt.datetime, event: str = "published") -> TimestampedValue:
    body = {"event": event, "post_id": post_id, "user_id": user, "caption": caption,
            "image_url": "https://img.example/1.jpg", "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return TimestampedValue(json.dumps(body).encode(), at.timestamp())


def until(stream: TestStream, end: dt.datetime, step: int = 240) -> TestStream:
    """Advance the watermark to ``end`` in steps shorter than the lists' allowed lateness, as a
    job's watermark moves (one jump of hours would fire every timer of the skipped minutes behind it,
    and their lists would be dropped as late)."""
    t = stream.watermarks[None].micros // 1_000_000 // 60 * 60 + step
    while t < end.timestamp():
        stream.advance_watermark_to(t)
        t += step
    return stream.advance_watermark_to(end.timestamp())


def streaming_pipeline():
    opts = PipelineOptions([])
    opts.view_as(StandardOptions).streaming = True
    return TestPipeline(options=opts)


def steady(tag: str, start: dt.datetime, hours: int, accounts_per_hour: int, prefix: str = "s"):
    """``accounts_per_hour`` distinct accounts post once each hour, spread over the hour."""
    out = []
    for h in range(hours):
        for a in range(accounts_per_hour):
            at = start + dt.timedelta(hours=h, minutes=(a * 50) // accounts_per_hour + 1)
            out.append(msg(f"{prefix}{tag}{h}-{a}", f"{prefix}{a}", f"#{tag}", at))
    return out


def burst(tag: str, at: dt.datetime, accounts: int, prefix: str = "b"):
    return [msg(f"{prefix}{tag}{i}", f"{prefix}{i}", f"#{tag}", at + dt.timedelta(seconds=i)) for i in range(accounts)]
