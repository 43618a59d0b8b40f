"""Where the job reads and writes: the tables and THE write of its rows."""
from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam


class Tables(NamedTuple):
    project: str
    instance: str
    counts: str  # the hashtags table
    post_state: str
    counts_exist: bool = True  # False: a dry run before the table was ever created (nothing to read)
    app_profile: str | None = None  # reads of priors and writes: settings.WRITER_APP_PROFILE in production


def write_rows(tables: Tables, table: str) -> beam.PTransform:
    """THE write of the job's DirectRows to ``table`` (every Bigtable write of the recount goes
    through here, so the writers' app profile is set in one place): the prior reads' profile, the
    single-cluster ``writer`` in production (pipelines/bigtable_write.py: Beam's WriteToBigTable
    takes no app profile)."""
    from pipelines.bigtable_write import WriteRows

    return WriteRows(tables.project, tables.instance, table, app_profile_id=tables.app_profile)
