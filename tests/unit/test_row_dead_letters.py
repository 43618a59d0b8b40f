"""A row that cannot be built is a dead letter, never an exception out of the DoFn (issue 8 item 0).

The failing inputs are the ones that killed the job before validation existed (a lone surrogate in a
key or post id, a pre-1970 ``computed_at``) plus a count that does not fit int64; the DoFns are
called through a real pipeline's ParDo with the DEAD output declared, as streaming_main wires them."""
from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from hashtags import layout
from hashtags.layout import TopPost
from hashtags.messages import TopPostsUpdate
from pipelines.streaming import HourCount, HourCountRow, TopPostsRow
from pipelines.transforms import DEAD, Tally

UTC = dt.timezone.utc
H = dt.datetime(2026, 11, 23, 10, tzinfo=UTC)


def dead_view(m):
    """(dlq_source, the reason's first two parts, the decoded payload) of one dead letter."""
    return m.attributes["dlq_source"], m.attributes["dlq_reason"].split(":")[:2], json.loads(m.data.decode("ascii"))


def run(fn, elements, rows: list[bytes], dead: list) -> None:
    """One pipeline run of ``fn`` with its DEAD output declared; asserts both outputs exactly."""
    with TestPipeline(options=PipelineOptions(["--runner=BundleBasedDirectRunner"])) as p:
        out = p | beam.Create(elements, reshuffle=False) | beam.ParDo(fn).with_outputs(DEAD, main="rows")
        assert_that(out.rows | "Keys" >> beam.Map(lambda r: r.row_key), equal_to(rows), label="rows")
        assert_that(out[DEAD] | "Dead" >> beam.Map(dead_view), equal_to(dead), label="dead")


def test_hour_rows_that_cannot_be_built_are_dead_letters():
    good = HourCount("love", H, Tally(3, "Love"), 0)
    surrogate = HourCount("a\ud800", H, Tally(1, None), 0)
    too_big = HourCount("big", H, Tally(2**63, None), 1)
    run(HourCountRow(4), [good, surrogate, too_big], [b"love"], [
        ("hour-counts", ["row not built", " UnicodeEncodeError"],
         {"key": "a\ud800", "window_start": H.isoformat(), "count": 1, "display": None, "generation": 4}),
        ("hour-counts", ["row not built", " error"],
         {"key": "big", "window_start": H.isoformat(), "count": 2**63, "display": None, "generation": 4}),
    ])


def test_top_rows_that_cannot_be_built_are_dead_letters():
    post = (TopPost("p1", "https://img.example/1.jpg"),)
    good = TopPostsUpdate("cats", H, post)
    before_1970 = TopPostsUpdate("old", dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), post)
    surrogate = TopPostsUpdate("cats", H, (TopPost("p\ud800", "https://img.example/2.jpg"),))
    run(TopPostsRow(), [good, before_1970, surrogate], [b"cats"], [
        ("top-posts-rows", ["row not built", " ValueError"],
         {"hashtag": "old", "computed_at": "1969-12-31 23:59:59+00:00",
          "posts": [["p1", "https://img.example/1.jpg"]]}),
        ("top-posts-rows", ["row not built", " UnicodeEncodeError"],
         {"hashtag": "cats", "computed_at": str(H), "posts": [["p\ud800", "https://img.example/2.jpg"]]}),
    ])


def test_a_bad_generation_fails_when_the_graph_is_built():
    for bad in (-1, "1", True):
        with pytest.raises(ValueError):
            HourCountRow(bad)
    assert HourCountRow(3).generation == 3 and layout.hour_column(3) == b"h.3"
