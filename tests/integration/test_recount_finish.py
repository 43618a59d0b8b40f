"""The job records itself and writes its report as its last step, after every Bigtable write
(pipelines.recount_steps.report.FinishRunFn behind WaitOn): on the emulator, a run whose base-count write fails
leaves neither a report nor a run record, and the same night run normally leaves both. (The
order itself is pinned by tests/unit/test_recount_launch.py on the graph: on FnApiRunner the writes
are fused into stages that run before the last step even without the barrier.)"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from google.cloud.bigtable.row import DirectRow

from hashtag_store import post_state as state_store
from hashtags import archive, layout, planning
from hashtags.messages import PostEvent
from hashtags.planning import JobConfig
from pipelines import recount_launch
from pipelines.recount_steps.bases import BaseRowFn
from pipelines.transforms import event_json_line
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator

UTC = dt.timezone.utc
AS_OF = dt.date(2031, 3, 23)  # far from the wall clock (the counts family's GC: test_recount_emulator)


def write_day(root, day: dt.date, events) -> None:
    d = root / archive.partition_name(day)
    d.mkdir(parents=True, exist_ok=True)
    (d / "events.jsonl").write_text("".join(event_json_line(e) + "\n" for e in events), encoding="utf-8")


def failing_base_row(self, r):
    """A base row in a column family the table does not have: Bigtable refuses the mutation, so
    the WriteBase step fails (MutationsBatcher.close raises in finish_bundle)."""
    row = DirectRow(layout.row_key(r.key))
    row.set_cell("no_such_family", b"base", b"x", timestamp=layout.cell_time(layout.midnight_utc(AS_OF)))
    yield row


def test_a_failed_write_leaves_no_report_and_no_record_a_good_run_leaves_both(
        store, table_name, tmp_path, monkeypatch):
    events = [PostEvent("published", f"p{i}", "u", "#one #two", "https://img.example/a.jpg",
                        dt.datetime(2031, 3, 22, 10, i, tzinfo=UTC), event_id=f"e{i}") for i in range(5)]
    write_day(tmp_path / "archive", dt.date(2031, 3, 22), events)
    store.write_hour_counts([("one", dt.datetime(2031, 3, 22, 10, tzinfo=UTC), 9, None)])
    reports = tmp_path / "reports"
    rebuild = JobConfig(planning.plan_full_rebuild(AS_OF), str(tmp_path / "archive"), str(reports), INSTANCE,
                        table_name, f"{table_name}-state", project=PROJECT)

    monkeypatch.setattr(BaseRowFn, "process", failing_base_row)
    failed = recount_launch.run(rebuild)
    assert failed.exit_code == recount_launch.EXIT_FAILED, failed.message
    assert "no_such_family" in failed.message or "MutationsBatchError" in failed.message, failed.message
    assert not reports.exists() or list(reports.iterdir()) == []
    assert state_store.run_records(PROJECT, INSTANCE, f"{table_name}-state") == []

    monkeypatch.undo()
    ok = recount_launch.run(rebuild)
    assert ok.exit_code == recount_launch.EXIT_OK, ok.message
    assert sorted(f.name for f in reports.iterdir()) == ["drift-2031-03-23.json", "drift-2031-03-23.md"]
    report = json.loads((reports / "drift-2031-03-23.json").read_text())
    assert report == ok.report
    assert (report["events_read"], report["archive_files"], report["posts"], report["posts_changed"]) == (5, 1, 5, 5)
    assert (report["base_cells_written"], report["state_cells_written"]) == (2, 5)
    assert {t["tag"]: (t["before"], t["after"]) for t in report["drifted_tags"]} == {"one": (9, 5), "two": (0, 5)}
    assert state_store.last_run(PROJECT, INSTANCE, f"{table_name}-state") == planning.LastRun(
        AS_OF, dt.date(2031, 3, 22))
    assert {k: t for k, t, _ in store.scan_totals()} == {"one": 5, "two": 5}
