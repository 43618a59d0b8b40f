"""pipelines.bigtable_write.WriteRows on the Bigtable emulator: the rows land (cells, values,
timestamps), the counter counts them, and a write that Bigtable refuses fails the pipeline instead
of vanishing (what Beam's writer does too: MutationsBatcher.close raises)."""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from hashtag_store import mutations
from pipelines.bigtable_write import WriteRows
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator
HOUR = dt.datetime(2026, 11, 23, 10, tzinfo=dt.timezone.utc)


def write(rows, table: str, **kwargs):
    p = beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"]))
    _ = p | beam.Create(rows) | WriteRows(PROJECT, INSTANCE, table, **kwargs)
    result = p.run()
    result.wait_until_finish()
    return result


def test_rows_land_through_the_writer(store, table_name):
    rows = [mutations.hour_count_row(f"tag{i}", HOUR, i + 1, f"Tag{i}", generation=3) for i in range(250)]
    result = write(rows, table_name, flush_count=100)
    written = result.metrics().query(MetricsFilter().with_name("bigtable_rows_written"))["counters"]
    assert sum(c.committed for c in written) == 250
    assert {k: n for k, n, _ in store.scan_totals()} == {f"tag{i}": i + 1 for i in range(250)}
    doc = store.read_page("tag7")
    assert (doc.total_posts, doc.display_name) == (8, "Tag7")


def test_a_refused_write_fails_the_pipeline(bigtable_emulator):
    rows = [mutations.hour_count_row("tag", HOUR, 1, None, generation=0)]
    with pytest.raises(Exception, match="(?i)not found|Errors in batch mutations"):
        write(rows, "no-such-table")
