"""A relaunched job (new generation, empty state) under TestStream, seeded from the Bigtable
emulator: a tag whose earlier generation wrote its hour accounts is compared against that history
and does not trend; a tag with no stored history and the same accounts does."""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from hashtag_store import mutations
from pipelines.transforms import ParsePostEvents
from pipelines.trends import RankedTrends
from tests.conftest import INSTANCE, PROJECT
from tests.unit.trends_helpers import NOON, burst, streaming_pipeline, until

pytestmark = pytest.mark.emulator


def test_relaunch_does_not_make_a_steady_tag_look_new(store, table_name):
    # generation 0 counted 20 accounts an hour of #steady for the 26 hours before noon
    store.mutate([mutations.hour_accounts_row("steady", NOON - dt.timedelta(hours=h), 20, generation=0)
                  for h in range(1, 27)])
    # the new job (generation 1, empty state) sees 20 accounts of #steady and 20 of #fresh at noon
    stream = (TestStream().advance_watermark_to(NOON.timestamp())
              .add_elements(burst("steady", NOON, 20, prefix="s") + burst("fresh", NOON, 20, prefix="f")))
    stream = until(stream, NOON + dt.timedelta(minutes=4))
    bigtable = {"project_id": PROJECT, "instance_id": INSTANCE, "table_id": table_name}
    wanted = (NOON + dt.timedelta(minutes=3)).timestamp()

    class At(beam.DoFn):
        def process(self, entries, win=beam.DoFn.WindowParam):
            if float(win.start) == wanted:
                yield [(e.tag, e.accounts) for e in entries]

    with streaming_pipeline() as p:
        out = ((p | stream | ParsePostEvents()).events
               | RankedTrends(bigtable)
               | beam.ParDo(At()))
        assert_that(out, equal_to([[("fresh", 20)]]))
