"""ScoreTags' timer horizon (pipelines/trends.py): with the local reader's wall-clock watermark, no
evaluation is scheduled for a minute whose list the ranking would drop as too late; elsewhere
(TestStream, Dataflow) every minute is evaluated."""
from __future__ import annotations

import time

from hashtags import trends
from pipelines.trends import SCORE_LATENESS_SECONDS, ScoreTags


def test_a_clock_watermark_job_schedules_nothing_its_lists_would_drop(monkeypatch):
    now_ms = 1_796_000_000_000 + 42_000  # 42 s into a minute
    monkeypatch.setattr(time, "time", lambda: now_ms / 1000)
    horizon = trends.minute_floor(now_ms) - SCORE_LATENESS_SECONDS * 1000 + trends.MINUTE_MS
    local, exact = ScoreTags(clock_watermark=True), ScoreTags()
    ninety_minutes_ago = trends.minute_floor(now_ms) - 90 * trends.MINUTE_MS
    assert local._not_before_the_horizon(ninety_minutes_ago) == horizon
    # the horizon's list is still on time for the ranking: its window ends within the lateness
    assert horizon + trends.MINUTE_MS + SCORE_LATENESS_SECONDS * 1000 > now_ms
    assert local._not_before_the_horizon(horizon + trends.MINUTE_MS) == horizon + trends.MINUTE_MS
    assert exact._not_before_the_horizon(ninety_minutes_ago) == ninety_minutes_ago
