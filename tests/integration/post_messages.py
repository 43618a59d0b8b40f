"""Post-event messages for the tests that drive the real count path under TestStream
(test_replay_idempotence, test_generations) and the messages test_history_related publishes to the
running job (``msg(...).value``): one place for their shape."""
from __future__ import annotations

import datetime as dt
import json

from apache_beam.transforms.window import TimestampedValue


def at(hour: dt.datetime, minute: int) -> dt.datetime:
    return hour + dt.timedelta(minutes=minute)


def msg(post_id: str, caption: str, when: dt.datetime, event: str = "published",
        user_id: str = "u1") -> TimestampedValue:
    """A post-events payload (bytes) stamped with its event time, as the local read delivers it."""
    body = {"event": event, "post_id": post_id, "user_id": user_id, "caption": caption,
            "image_url": None if event == "deleted" else f"https://img.example/{post_id}.jpg",
            "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return TimestampedValue(json.dumps(body, ensure_ascii=False).encode(), when.timestamp())
