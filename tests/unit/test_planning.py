"""hashtags.planning: what each run mode covers, the date parser, and invalid requests."""
from __future__ import annotations

import datetime as dt

import pytest

from hashtags import planning
from hashtags.planning import LastRun, RunPlan, parse_day

D = dt.date
M = D(2026, 11, 23)  # the midnight of a nightly run (as a date)


# ---- the one date parser ----------------------------------------------------------------------
@pytest.mark.parametrize("value, day", [
    ("2026-11-23", M),
    (" 2026-11-23 ", M),
    (M, M),
    (dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc), M),
    (dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))), D(2026, 11, 22)),
    (dt.datetime(2026, 11, 23, 23, 59), M),  # naive: taken as UTC
    ("2026-11-23T02:00:00+00:00", M),
    ("2026-11-23T02:00:00Z", M),
    ("2026-11-23T01:00:00+05:00", D(2026, 11, 22)),  # converted to UTC, never truncated
])
def test_parse_day(value, day):
    assert parse_day(value) == day


@pytest.mark.parametrize("value", ["", "yesterday", "2026-13-01", "2026-11-31", "20261123", None, 20261123])
def test_parse_day_rejects(value):
    with pytest.raises(ValueError, match="not a YYYY-MM-DD date"):
        parse_day(value)


def test_optional_day():
    assert planning.optional_day(None) is None and planning.optional_day("  ") is None
    assert planning.optional_day("2026-11-23") == M


# ---- nightly ----------------------------------------------------------------------------------
def test_first_night_reads_every_day_before_the_midnight():
    assert planning.plan_nightly(M, None) == RunPlan("nightly", M, None, D(2026, 11, 22), False)


def test_consecutive_night_reads_since_the_last_run_with_one_day_overlap():
    last = LastRun(as_of=D(2026, 11, 22), arrived_to=D(2026, 11, 21))
    p = planning.plan_nightly(M, last)
    assert (p.arrived_from, p.arrived_to) == (D(2026, 11, 21), D(2026, 11, 22))
    assert p.arrival_days() == [D(2026, 11, 21), D(2026, 11, 22)]


def test_skipped_night_is_covered_by_the_next_one():
    last = LastRun(as_of=D(2026, 11, 21), arrived_to=D(2026, 11, 20))  # the 22nd never ran
    p = planning.plan_nightly(M, last)
    assert (p.arrived_from, p.arrived_to) == (D(2026, 11, 20), D(2026, 11, 22))


def test_after_a_short_reapply_the_nightly_catches_up_from_its_cut():
    last = LastRun(as_of=D(2026, 11, 22), arrived_to=D(2026, 11, 10))  # reapply of days ..11-10 at 11-22
    assert planning.plan_nightly(M, last).arrived_from == D(2026, 11, 10)


@pytest.mark.parametrize("last_as_of", [M, D(2026, 11, 24)])
def test_nightly_refuses_a_record_not_before_its_midnight(last_as_of):
    with pytest.raises(ValueError, match="not before as_of"):
        planning.plan_nightly(M, LastRun(as_of=last_as_of, arrived_to=D(2026, 11, 22)))


# ---- reapply and full rebuild -----------------------------------------------------------------
def test_reapply_is_the_range_given():
    p = planning.plan_reapply(D(2026, 11, 1), D(2026, 11, 3), M, dry_run=True)
    assert p == RunPlan("reapply", M, D(2026, 11, 1), D(2026, 11, 3), True)
    assert p.arrival_days() == [D(2026, 11, 1), D(2026, 11, 2), D(2026, 11, 3)]


@pytest.mark.parametrize("first, last, msg", [
    (D(2026, 11, 3), D(2026, 11, 1), "after the last"),
    (D(2026, 11, 20), M, "not before as_of"),
    (D(2026, 11, 20), D(2026, 11, 30), "not before as_of"),
])
def test_reapply_invalid_ranges(first, last, msg):
    with pytest.raises(ValueError, match=msg):
        planning.plan_reapply(first, last, M)


def test_full_rebuild_reads_everything_before_the_midnight():
    p = planning.plan_full_rebuild(M)
    assert p == RunPlan("full_rebuild", M, None, D(2026, 11, 22), False)
    assert p.arrival_days() is None


# ---- requests (CLI / DAG) ---------------------------------------------------------------------
def test_plan_run_defaults_as_of_to_the_run_day():
    assert planning.plan_run("nightly", run_day=M) == planning.plan_nightly(M, None)
    assert planning.plan_run("full_rebuild", run_day=M, as_of=D(2026, 11, 1)).as_of == D(2026, 11, 1)
    assert planning.plan_run("reapply", run_day=M, to_day=D(2026, 11, 2)) == \
        planning.plan_reapply(D(2026, 11, 2), D(2026, 11, 2), M)


@pytest.mark.parametrize("kw, msg", [
    (dict(mode="nightly", as_of=D(2026, 11, 24)), "has not come yet"),
    (dict(mode="full_rebuild", as_of=D(2026, 12, 1)), "has not come yet"),
    (dict(mode="reapply"), "needs a first"),
    (dict(mode="nightly", from_day=D(2026, 11, 1)), "only go with reapply"),
    (dict(mode="full_rebuild", to_day=D(2026, 11, 1)), "only go with reapply"),
    (dict(mode="weekly"), "unknown mode"),
])
def test_plan_run_invalid(kw, msg):
    with pytest.raises(ValueError, match=msg):
        planning.plan_run(run_day=M, **kw)


@pytest.mark.parametrize("params, plan", [
    ({}, RunPlan("nightly", M, None, D(2026, 11, 22), False)),
    ({"from_date": None, "to_date": "", "full_rebuild": False, "dry_run": True},
     RunPlan("nightly", M, None, D(2026, 11, 22), True)),
    ({"full_rebuild": True}, RunPlan("full_rebuild", M, None, D(2026, 11, 22), False)),
    ({"from_date": "2026-11-01", "to_date": "2026-11-02"}, RunPlan("reapply", M, D(2026, 11, 1), D(2026, 11, 2), False)),
    ({"from_date": "2026-11-01", "as_of": "2026-11-10"},
     RunPlan("reapply", D(2026, 11, 10), D(2026, 11, 1), D(2026, 11, 1), False)),
])
def test_plan_from_params(params, plan):
    assert planning.plan_from_params(params, M) == plan


def test_required_days_per_mode():
    assert planning.required_days(planning.plan_nightly(M, None)) == [D(2026, 11, 22)]
    assert planning.required_days(planning.plan_reapply(D(2026, 11, 1), D(2026, 11, 2), M)) == \
        [D(2026, 11, 1), D(2026, 11, 2)]
    assert planning.required_days(planning.plan_full_rebuild(M)) == []


def test_a_job_config_names_the_range_only_when_the_plan_has_one():
    def params(plan):
        return planning.JobConfig(plan, "A", "R", "i", "t", "s").to_parameters()

    common = {"archive_path": "A", "report_path": "R", "bigtable_instance": "i", "bigtable_table": "t",
              "post_state_table": "s"}
    assert params(planning.plan_nightly(M, None)) == {"mode": "nightly", "as_of": "2026-11-23", **common}
    assert params(planning.plan_reapply(D(2026, 11, 1), D(2026, 11, 2), M, dry_run=True)) == {
        "mode": "reapply", "as_of": "2026-11-23", "arrived_from": "2026-11-01", "arrived_to": "2026-11-02",
        "report_only": "true", **common}
    assert params(planning.plan_full_rebuild(M)) == {"mode": "full_rebuild", "as_of": "2026-11-23", **common}


@pytest.mark.parametrize("params, error", [
    ({"mode": "full_rebuild", "arrived_from": "2026-11-01"}, "do not go with full_rebuild"),
    ({"mode": "reapply", "arrived_from": "2026-11-01"}, "both arrived_from and arrived_to"),
    ({"mode": "weekly"}, "unknown mode"),
    ({"report_only": "perhaps"}, "not a boolean"),
    ({"drift_threshold": "high"}, "not a number"),
    ({"bigtable_table": ""}, "bigtable_table is required"),
])
def test_a_job_config_refuses_bad_parameters(params, error):
    base = {"archive_path": "A", "bigtable_instance": "i", "bigtable_table": "t", "post_state_table": "s"}
    with pytest.raises(ValueError, match=error):
        planning.JobConfig.from_parameters({**base, **params}, today=M)


def test_a_job_config_reads_typed_values_and_text_alike():
    base = {"archive_path": "A", "bigtable_instance": "i", "bigtable_table": "t", "post_state_table": "s"}
    typed = planning.JobConfig.from_parameters({**base, "report_only": True, "drift_threshold": 0.1}, today=M)
    text = planning.JobConfig.from_parameters({**base, "report_only": "true", "drift_threshold": "0.1"}, today=M)
    assert typed == text and typed.plan == planning.plan_nightly(M, None, dry_run=True)
    assert typed.drift_threshold == 0.1 and typed.report_path == "artifacts/drift"


def test_plans_are_frozen():
    with pytest.raises(AttributeError):
        planning.plan_full_rebuild(M).as_of = D(2026, 1, 1)


def test_job_names_are_deterministic_per_night_and_plan():
    assert planning.job_name(planning.plan_nightly(M, None)) == "hashtag-recount-20261123-nightly"
    assert planning.job_name(planning.plan_full_rebuild(M, dry_run=True)) == "hashtag-recount-20261123-full-rebuild-dry"
    assert planning.job_name(planning.plan_reapply(D(2026, 11, 1), D(2026, 11, 2), M)) == \
        "hashtag-recount-20261123-reapply-20261101-20261102"
    for p in (planning.plan_nightly(M, None), planning.plan_full_rebuild(M), planning.plan_reapply(M - planning.ONE_DAY, M - planning.ONE_DAY, M)):
        assert planning.job_name(p).startswith(planning.night_job_prefix(M))


# ---- property: nightly runs never leave an arrival day unread -----------------------------------
from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(deadline=None, max_examples=60)
@given(gaps=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=12))
def test_any_sequence_of_nights_reads_every_arrival_day(gaps):
    """Nights spaced by ``gaps`` days (skipped nights included), each planned from the previous
    run's record, over an archive that starts on ``start``: together they read every arrival day
    before the last midnight, and each night re-reads the previous run's last day (the overlap)."""
    start = D(2026, 1, 1)
    as_of, last, read = start, None, set()
    for gap in gaps:
        as_of += dt.timedelta(days=gap)
        p = planning.plan_nightly(as_of, last)
        first = p.arrived_from or start  # open at the start: the whole archive
        days = {first + dt.timedelta(days=i) for i in range((p.arrived_to - first).days + 1)}
        if last is not None:
            assert last.arrived_to in days
        read |= days
        last = planning.LastRun(as_of=p.as_of, arrived_to=p.arrived_to)
    assert {start + dt.timedelta(days=i) for i in range((as_of - start).days)} <= read
