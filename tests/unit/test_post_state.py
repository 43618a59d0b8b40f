"""hashtags/post_state.py (pure): the state and run-record encodings, the per-tag deltas of a change,
and how a requested plan is adjusted to the runs already recorded."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from hashtags import planning
from hashtags import post_state as ps
from hashtags.messages import PostEvent

UTC = dt.timezone.utc
D = dt.date(2026, 11, 23)
DAY = dt.timedelta(days=1)


def event(kind, caption, t, event_id="e1", post_id="p1", hashtags=None):
    return PostEvent(kind, post_id, "u1", caption, "https://img.example/a.jpg" if kind == "published" else None,
                     t, event_id=event_id, hashtags=hashtags)


T = dt.datetime(2026, 11, 22, 10, tzinfo=UTC)


@hsettings(max_examples=200, deadline=None)
@given(us=st.integers(0, 2**62), deleted=st.integers(0, 1), eid=st.text(max_size=20),
       digest=st.binary(min_size=12, max_size=12), tags=st.lists(st.text(min_size=1, max_size=10), max_size=5))
def test_state_round_trips(us, deleted, eid, digest, tags):
    s = ps.PostState(ps.OrderKey(us, deleted, eid, digest), tuple(tags))
    assert ps.decode_state(ps.encode_state(s)) == s
    assert ps.encode_state(s).isascii()


def test_state_of_counts_the_shared_tag_rule_and_nothing_for_a_delete():
    pub = ps.state_of("p1", ps.candidate(event("published", "#Love #LOVE #ｌｏｖｅ #cat hi", T)))
    assert pub.tags == ("cat", "love") and pub.published
    gone = ps.state_of("p1", ps.candidate(event("deleted", "#Love", T + DAY)))
    assert gone.tags == () and not gone.published
    with pytest.raises(ValueError):
        ps.decode_state(b'[2,1,0,"","00",[]]')


def test_order_time_then_delete_then_event_id():
    pub = ps.candidate(event("published", "#a", T, "e9"))
    dele = ps.candidate(event("deleted", "#a", T, "e1"))
    later = ps.candidate(event("published", "#b", T + dt.timedelta(microseconds=1), "e0"))
    assert ps.later(pub, dele) is dele and ps.later(dele, pub) is dele  # same instant: the delete wins
    assert ps.later(dele, later) is later
    assert ps.later(ps.candidate(event("published", "#a", T, "e2")), ps.candidate(event("published", "#b", T, "e3")))[2] == "e3"
    assert ps.later(None, pub) is pub and ps.later(pub, None) is pub


def test_tag_deltas():
    a = ps.state_of("p", ps.candidate(event("published", "#x #y", T)))
    b = ps.state_of("p", ps.candidate(event("published", "#y #z", T + DAY, "e2")))
    d = ps.state_of("p", ps.candidate(event("deleted", "#x #y", T + 2 * DAY, "e3")))
    assert sorted(ps.tag_deltas(None, a)) == [("x", 1), ("y", 1)]
    assert sorted(ps.tag_deltas(a, b)) == [("x", -1), ("y", -1), ("y", 1), ("z", 1)]  # an edit
    assert sorted(ps.tag_deltas(b, d)) == [("y", -1), ("z", -1)]  # the delete takes back what was counted
    assert list(ps.tag_deltas(d, d)) == [] and list(ps.tag_deltas(None, d)) == []
    assert ps.changed(None, a) and ps.changed(a, b) and not ps.changed(b, a) and not ps.changed(b, b)


def test_run_records_and_the_latest_before():
    r1 = ps.RunRecord(D, planning.FULL_REBUILD, None, D - DAY, dt.datetime(2026, 11, 23, 2, tzinfo=UTC))
    r2 = ps.RunRecord(D + DAY, planning.NIGHTLY, D - 2 * DAY, D, dt.datetime(2026, 11, 24, 2, 5, tzinfo=UTC))
    for r in (r1, r2):
        assert ps.decode_run(ps.encode_run(r)) == r
    assert ps.latest_run([r2, r1]) == r2
    assert ps.latest_run([r2, r1], before=D + DAY) == r1
    assert ps.latest_run([r1], before=D) is None
    assert r2.last_run() == planning.LastRun(D + DAY, D)
    assert ps.run_column(D) == b"run.2026-11-23"
    assert ps.RUN_ROW.startswith(b"\x00")  # no valid post_id (no control characters) takes it


def record(as_of, mode=planning.NIGHTLY, first=None, last=None):
    return ps.RunRecord(as_of, mode, first, last or as_of - DAY, dt.datetime(2026, 12, 1, tzinfo=UTC))


def test_resolve_first_run_is_a_full_rebuild_and_reapply_needs_state():
    r = ps.resolve(planning.plan_nightly(D, None), [])
    assert r.fresh and r.plan == planning.RunPlan(planning.FULL_REBUILD, D, None, D - DAY)
    with pytest.raises(ps.PlanRefused):
        ps.resolve(planning.plan_reapply(D - 3 * DAY, D - DAY, D), [])
    full = ps.resolve(planning.plan_full_rebuild(D), [record(D - DAY)])
    assert full.fresh and full.plan == planning.plan_full_rebuild(D)


def test_resolve_a_normal_night_and_a_rerun_keep_the_plan():
    prior = [record(D - DAY, first=D - 4 * DAY, last=D - 2 * DAY)]
    plan = planning.plan_nightly(D, prior[0].last_run())
    first = ps.resolve(plan, prior)
    assert (first.plan, first.fresh) == (plan, False)
    done = record(D, first=plan.arrived_from, last=plan.arrived_to)
    again = ps.resolve(plan, prior + [done])
    assert (again.plan, again.fresh) == (plan, False)


def test_resolve_widens_to_what_the_night_already_applied():
    prior = [record(D - DAY), record(D, first=D - 5 * DAY, last=D - DAY)]
    r = ps.resolve(planning.plan_reapply(D - 3 * DAY, D - 2 * DAY, D), prior)
    assert (r.plan.mode, r.plan.arrived_from, r.plan.arrived_to, r.fresh) == (
        planning.REAPPLY, D - 5 * DAY, D - DAY, False)
    after_full = ps.resolve(planning.plan_nightly(D, prior[0].last_run()),
                            [prior[0], record(D, planning.FULL_REBUILD, None, D - DAY)])
    assert after_full.fresh and after_full.plan.mode == planning.FULL_REBUILD and after_full.plan.arrived_from is None


def test_resolve_refuses_to_go_back_in_time():
    with pytest.raises(ps.PlanRefused, match="back in time"):
        ps.resolve(planning.plan_nightly(D, record(D - DAY).last_run()), [record(D - DAY), record(D + DAY)])
    with pytest.raises(ps.PlanRefused):
        ps.resolve(planning.plan_full_rebuild(D), [record(D + DAY)])
