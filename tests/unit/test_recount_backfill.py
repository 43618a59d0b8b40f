"""Backfill planning (pure) and its command line."""
from __future__ import annotations

import datetime as dt

import pytest

from pipelines import backfill

D = dt.date
TODAY = D(2026, 11, 23)


def test_range_is_one_recount_as_of_the_midnight_after_to():
    p = backfill.plan(from_day=D(2026, 11, 20), to_day=D(2026, 11, 22), full_rebuild=False, each_day=False,
                      today=TODAY)
    assert p == backfill.Plan([D(2026, 11, 23)], [D(2026, 11, 20), D(2026, 11, 21), D(2026, 11, 22)], "range")


def test_each_day_recounts_every_midnight_in_order():
    p = backfill.plan(from_day=D(2026, 11, 20), to_day=D(2026, 11, 21), full_rebuild=False, each_day=True,
                      today=TODAY)
    assert p.as_ofs == [D(2026, 11, 21), D(2026, 11, 22)] and p.mode == "each_day"


def test_single_day_and_full_rebuild():
    assert backfill.plan(from_day=None, to_day=D(2026, 11, 1), full_rebuild=False, each_day=False,
                         today=TODAY).required_days == [D(2026, 11, 1)]
    assert backfill.plan(from_day=None, to_day=None, full_rebuild=True, each_day=False, today=TODAY) == \
        backfill.Plan([TODAY], [], "full_rebuild")


@pytest.mark.parametrize("kw, msg", [
    (dict(from_day=D(2026, 11, 22), to_day=D(2026, 11, 20)), "after"),
    (dict(from_day=D(2026, 11, 22), to_day=TODAY), "not a complete day"),
    (dict(from_day=None, to_day=None), "--full-rebuild"),
])
def test_bad_ranges(kw, msg):
    with pytest.raises(ValueError, match=msg):
        backfill.plan(full_rebuild=False, each_day=False, today=TODAY, **kw)


def test_cli_refuses_missing_days_before_running_anything(tmp_path, caplog):
    (tmp_path / "dt=2026-11-20").mkdir()
    (tmp_path / "dt=2026-11-20" / "a.jsonl").write_text("{}\n")
    code = backfill.main(["--archive", str(tmp_path), "--from", "2026-11-20", "--to", "2026-11-21",
                          "--no-progress"], today=TODAY)
    assert code == 2
    assert "archive days missing" in caplog.text and "2026-11-21" in caplog.text


def test_cli_bad_dates_exit_2(tmp_path):
    assert backfill.main(["--archive", str(tmp_path), "--from", "2026-11-22", "--to", "2026-11-20"],
                         today=TODAY) == 2
    assert backfill.main(["--archive", str(tmp_path), "--full-rebuild"], today=TODAY) == 2  # empty archive
