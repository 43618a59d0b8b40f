"""The jobs' Bigtable sink: ``WriteRows`` writes DirectRows through a given app profile.

    rows | WriteRows(project_id, instance_id, table_id, app_profile_id=settings.WRITER_APP_PROFILE)

Why not Beam's ``WriteToBigTable``: it takes no app profile (Beam 2.77,
io/gcp/bigtableio.py: ``WriteToBigTable.__init__`` has project_id, instance_id, table_id,
use_cross_language, expansion_service, flush_count, max_row_bytes; its ``_BigTableWriteFn`` opens
``client.instance(instance_id).table(table_id)`` with no ``app_profile_id``), so every write goes
through the instance's default profile, multi-cluster on a replicated instance, where two panes of
one cell can land on different clusters and the older one can win (DESIGN.md "Bigtable routing").

This DoFn is that writer with the profile passed: the classic client's
``instance.table(table_id, app_profile_id=…)`` (google-cloud-bigtable, table.py: the profile is
given to the data client's ``get_table`` and so to every MutateRows request; one client per process,
pipelines/clients.py) and its ``MutationsBatcher``, one per bundle, closed in ``finish_bundle``. ``MutationsBatcher.close()``
raises ``MutationsBatchError`` when any mutation failed after the client's retries (batcher.py), so
a failed write fails the bundle and the runner retries it (every write here is an idempotent
SetCell at a fixed timestamp), as with Beam's writer. Counters: ``hashtags/bigtable_rows_written``
per row handed to the batcher, ``hashtags/bigtable_write_failures`` per failed mutation.

``app_profile_id=None`` uses the instance's default profile (the emulator has no profiles; the
local stack passes none).
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

NAMESPACE = "hashtags"


class _WriteRowsFn(beam.DoFn):
    def __init__(self, project_id: str, instance_id: str, table_id: str, app_profile_id: str | None,
                 flush_count: int):
        self.project_id = project_id
        self.instance_id = instance_id
        self.table_id = table_id
        self.app_profile_id = app_profile_id
        self.flush_count = flush_count
        self._written = Metrics.counter(NAMESPACE, "bigtable_rows_written")
        self._failures = Metrics.counter(NAMESPACE, "bigtable_write_failures")
        self._table = None
        self._batcher = None

    def setup(self):
        from pipelines.clients import bigtable_table  # one client per process (its module doc)

        self._table = bigtable_table(self.project_id, self.instance_id, self.table_id, self.app_profile_id)

    def start_bundle(self):
        from google.cloud.bigtable.batcher import MutationsBatcher

        self._batcher = MutationsBatcher(self._table, flush_count=self.flush_count)

    def process(self, row):
        self._batcher.mutate(row)
        self._written.inc()

    def finish_bundle(self):
        from google.cloud.bigtable.batcher import MutationsBatchError

        batcher, self._batcher = self._batcher, None
        try:
            batcher.close()
        except MutationsBatchError as e:
            self._failures.inc(len(e.exc) if getattr(e, "exc", None) else 1)
            raise

    def display_data(self):
        return {"projectId": self.project_id, "instanceId": self.instance_id, "tableId": self.table_id,
                "appProfileId": self.app_profile_id or "(default)"}


class WriteRows(beam.PTransform):
    """PCollection[DirectRow] → Bigtable through ``app_profile_id`` (see the module doc)."""

    def __init__(self, project_id: str, instance_id: str, table_id: str, *,
                 app_profile_id: str | None = None, flush_count: int = 1000):
        super().__init__()
        self.fn = _WriteRowsFn(project_id, instance_id, table_id, app_profile_id, flush_count)

    def expand(self, rows):
        return rows | "Mutate" >> beam.ParDo(self.fn)
