"""The nightly job's per-day cells (hashtags/day_cells.py, pipelines.recount_steps.days SumDayDeltas / DayAccounts):
the Beam steps (FnApiRunner via TestPipeline) over archive files against exact numbers and against
a plain-Python reference written here; the value rule (prior before M + deltas, fresh, horizon,
zeroed accounts); and, over random histories of nights, that rerunning a night rewrites the same
p.<day> values and that the incremental chain of nights equals a full rebuild for every day cell."""
from __future__ import annotations

import collections
import datetime as dt
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings as hsettings, strategies as st

from hashtags import day_cells, layout, normalize_tag, extract_hashtags, planning
from hashtags import post_state as ps
from hashtags.day_cells import DayCells, DayPriors, DaySpan, day_number
from hashtags.layout import Cell, encode_count
from hashtags.messages import PostEvent
from pipelines.recount_steps.changes import Changes
from pipelines.recount_steps.days import DayAccounts, SumDayDeltas
from pipelines.recount_steps.read import Winners

UTC = dt.timezone.utc
AS_OF = dt.datetime(2031, 3, 23, tzinfo=UTC)
D = day_number  # a date → its day number


def line(event, post_id, user, caption, t):
    return json.dumps({"event": event, "post_id": post_id, "user_id": user, "caption": caption,
                       "image_url": None if event == "deleted" else "https://img.example/x.jpg", "event_time": t})


SCENARIO = [
    line("published", "p1", "u1", "#a #b", "2031-03-21T10:00:00Z"),
    line("published", "p2", "u1", "#a", "2031-03-21T11:00:00Z"),  # same user, same day: one account
    line("published", "p3", "u2", "#A #c", "2031-03-22T09:00:00Z"),
    line("published", "p4", "u3", "#b", "2031-03-21T08:00:00Z"),
    line("deleted", "p4", "u3", "#b", "2031-03-22T12:00:00Z"),  # deleted: counts nowhere
    line("published", "p5", "u2", "#a", "2031-03-20T07:00:00Z"),
    line("published", "p5", "u2", "#c #d", "2031-03-22T07:00:00Z"),  # an edit moves it to the 22nd
    line("published", "p6", "u4", "#a", "2031-03-23T00:00:00Z"),  # at M: not yet
    line("published", "p7", "u5", "#a", "2031-03-22T23:59:59.999Z"),
    line("published", "p8", "u1", "#z", "2031-02-01T10:00:00Z"),  # before the horizon (28 days)
    line("published", "p1", "u1", "#a #b", "2031-03-21T10:00:00Z"),  # a duplicate delivery
]


def reference_days(lines, as_of=AS_OF, first_day=None):
    """Plain Python: the latest event per post before M; per (tag, UTC day of the winner) the posts
    and the distinct users of the published winners, for days from ``first_day`` on."""
    latest = {}
    for raw in lines:
        o = json.loads(raw)
        t = dt.datetime.fromisoformat(o["event_time"].replace("Z", "+00:00"))
        if t >= as_of:
            continue
        k = (t, o["event"] == "deleted")
        if o["post_id"] not in latest or k > latest[o["post_id"]][0]:
            latest[o["post_id"]] = (k, o)
    posts, users = collections.Counter(), collections.defaultdict(set)
    for (t, deleted), o in latest.values():
        if deleted or (first_day and t.date() < first_day):
            continue
        for key in {normalize_tag(x) for x in extract_hashtags(o["caption"])}:
            posts[(key, t.date())] += 1
            users[(key, t.date())].add(o["user_id"])
    return dict(posts), {k: len(v) for k, v in users.items()}


def archive_files(tmp_path, lines):
    paths = []
    for i in range(2):  # the same post's events in different files
        f = tmp_path / f"arrived=2031-03-22/part-{i}.jsonl"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(x + "\n" for x in lines[i::2]), encoding="utf-8")
        paths.append(str(f))
    return paths


def run_days(tmp_path, lines, plan):
    """Winners → fresh Changes → SumDayDeltas, and Winners → DayAccounts, as ((tag, date), n)."""
    as_of = layout.midnight_utc(plan.as_of)
    as_dates = beam.MapTuple(lambda key, dn: ((key, day_cells.to_date(dn[0])), dn[1]))
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        winners = (p | beam.Create(archive_files(tmp_path, lines)) | Winners(as_of))["winners"]
        posts = ((winners | "Fresh" >> Changes(ps.Priors(), fresh=True))["changes"]
                 | SumDayDeltas(day_cells.horizon(plan.as_of)) | "PostDates" >> as_dates)
        accounts = winners | DayAccounts(day_cells.account_days(plan)) | "AccountDates" >> as_dates
        want_posts, want_accounts = reference_days(lines, as_of, first_day=plan.as_of - dt.timedelta(days=28))
        assert_that(posts, equal_to(sorted(want_posts.items())), label="posts")
        assert_that(accounts, equal_to(sorted(want_accounts.items())), label="accounts")


def test_scenario_reference_is_what_we_think():
    posts, accounts = reference_days(SCENARIO, first_day=dt.date(2031, 2, 23))
    d21, d22 = dt.date(2031, 3, 21), dt.date(2031, 3, 22)
    assert posts == {("a", d21): 2, ("b", d21): 1, ("a", d22): 2, ("c", d22): 2, ("d", d22): 1}
    assert accounts == {("a", d21): 1, ("b", d21): 1, ("a", d22): 2, ("c", d22): 1, ("d", d22): 1}


def test_day_deltas_and_accounts_of_a_full_rebuild(tmp_path):
    run_days(tmp_path, SCENARIO, planning.plan_full_rebuild(AS_OF.date()))


def test_accounts_only_for_the_arrival_days_of_a_nightly(tmp_path):
    """A nightly reading arrival days 03-22..03-22 writes a.<03-22> only (its p. deltas are every
    touched day of the horizon)."""
    plan = planning.plan_nightly(AS_OF.date(), planning.LastRun(dt.date(2031, 3, 22), dt.date(2031, 3, 22)))
    assert (plan.arrived_from, plan.arrived_to) == (dt.date(2031, 3, 22), dt.date(2031, 3, 22))
    as_of = AS_OF
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions([])) as p:
        out = ((p | beam.Create(archive_files(tmp_path, SCENARIO)) | Winners(as_of))["winners"]
               | DayAccounts(day_cells.account_days(plan))
               | beam.MapTuple(lambda key, dn: (key, day_cells.to_date(dn[0]), dn[1])))
        d22 = dt.date(2031, 3, 22)
        assert_that(out, equal_to([("a", d22, 2), ("c", d22, 1), ("d", d22, 1)]))


def test_account_days_and_horizon_of_each_mode():
    m = AS_OF.date()
    assert day_cells.horizon(m) == DaySpan(D(dt.date(2031, 2, 23)), D(dt.date(2031, 3, 22)))
    nightly = planning.plan_nightly(m, planning.LastRun(dt.date(2031, 3, 22), dt.date(2031, 3, 21)))
    assert day_cells.account_days(nightly) == DaySpan(D(dt.date(2031, 3, 21)), D(dt.date(2031, 3, 22)))
    assert day_cells.account_days(planning.plan_full_rebuild(m)) == day_cells.horizon(m)
    old = planning.plan_reapply(dt.date(2030, 12, 1), dt.date(2031, 2, 25), m)
    assert day_cells.account_days(old) == DaySpan(D(dt.date(2031, 2, 23)), D(dt.date(2031, 2, 25)))
    ancient = day_cells.account_days(planning.plan_reapply(dt.date(2030, 1, 1), dt.date(2030, 1, 2), m))
    assert D(dt.date(2030, 1, 1)) not in ancient and D(dt.date(2031, 3, 1)) not in ancient


def test_an_edit_moves_one_post_between_tag_days_and_a_delete_takes_it_back():
    pub = ps.candidate(PostEvent("published", "p", "u", "#a #b", None, dt.datetime(2031, 3, 20, 5, tzinfo=UTC)))
    edit = ps.candidate(PostEvent("published", "p", "u", "#b #c", None, dt.datetime(2031, 3, 22, 1, tzinfo=UTC)))
    gone = ps.candidate(PostEvent("deleted", "p", "u", "#b #c", None, dt.datetime(2031, 3, 22, 2, tzinfo=UTC)))
    s_pub, s_edit, s_gone = (ps.state_of("p", c) for c in (pub, edit, gone))
    d20, d22 = D(dt.date(2031, 3, 20)), D(dt.date(2031, 3, 22))
    assert sorted(day_cells.day_deltas(None, s_pub)) == [("a", d20, 1), ("b", d20, 1)]
    assert sorted(day_cells.day_deltas(s_pub, s_edit)) == [("a", d20, -1), ("b", d20, -1), ("b", d22, 1),
                                                           ("c", d22, 1)]
    assert sorted(day_cells.day_deltas(s_edit, s_gone)) == [("b", d22, -1), ("c", d22, -1)]
    assert list(day_cells.day_deltas(None, s_gone)) == []


H = DaySpan(100, 127)


def test_day_values_add_the_prior_before_m_or_start_fresh():
    priors = DayPriors({110: 7, 111: 2, 99: 5}, {110: 3, 120: 4})
    cells = day_cells.day_cells("t", [(110, 1), (112, 2), (90, 1)], [(120, 2), (121, 1)], priors,
                                fresh=False, horizon=H, account_days=DaySpan(120, 121))
    assert cells == DayCells("t", {110: 8, 112: 2}, {120: 2, 121: 1})
    # a full rebuild: Σ deltas from 0, and 0 for every other p. cell of the horizon it had
    fresh = day_cells.day_cells("t", [(110, 1), (112, 2)], [], priors, fresh=True, horizon=H,
                                account_days=H)
    assert fresh == DayCells("t", {110: 1, 112: 2, 111: 0}, {110: 0, 120: 0})
    # accounts: a day read again whose posts were deleted gets 0; an unread day is left alone
    gone = day_cells.day_cells("t", [], [], priors, fresh=False, horizon=H, account_days=DaySpan(120, 121))
    assert gone == DayCells("t", {}, {120: 0})
    assert day_cells.day_cells("t", [], [], priors, fresh=False, horizon=H, account_days=DaySpan(125, 126)) is None
    assert day_cells.day_cells("t", [(105, 0)], [], None, fresh=False, horizon=H,
                               account_days=H) == DayCells("t", {105: 0}, {})


def test_priors_take_the_newest_cell_of_each_column_and_skip_others():
    c = lambda n, ms: Cell(encode_count(n), ms)  # noqa: E731
    cells = [(b"p.20310320", c(4, 10)), (b"p.20310320", c(6, 20)), (b"a.20310320", c(2, 5)),
             (b"p.2031032", c(9, 30)), (b"x.20310320", c(9, 30)), (b"p.20310321", Cell(b"bad", 1))]
    every = lambda ms: True  # noqa: E731
    assert day_cells.priors_from_cells(cells, every) == DayPriors({D(dt.date(2031, 3, 20)): 6},
                                                                  {D(dt.date(2031, 3, 20)): 2})
    # the cell at 20 is a failed run's: the prior is the recorded one at 10, and the column is rewritten
    assert day_cells.priors_from_cells(cells, lambda ms: ms != 20) == DayPriors(
        {D(dt.date(2031, 3, 20)): 4}, {D(dt.date(2031, 3, 20)): 2}, frozenset({("p", D(dt.date(2031, 3, 20)))}))
    stale = DayPriors({105: 4}, {}, frozenset({("p", 105), ("p", 106), ("a", 105)}))
    assert day_cells.day_cells("t", [], [], stale, fresh=False, horizon=H, account_days=DaySpan(120, 121)) == \
        DayCells("t", {105: 4, 106: 0}, {105: 0})
    assert DayCells("t", {D(dt.date(2031, 3, 20)): 6}, {D(dt.date(2031, 3, 21)): 1}).by_date() == {
        dt.date(2031, 3, 20): layout.DayCounts(6, None), dt.date(2031, 3, 21): layout.DayCounts(None, 1)}


# ---- nights: rerun and full rebuild (the job's arithmetic with an in-memory table) ---------------
class Table:
    """Versioned day cells: (tag, kind, day) → {M: value}; reads take the newest version before M."""

    def __init__(self):
        self.cells = collections.defaultdict(dict)

    def priors(self, key, as_of_day):
        out = DayPriors({}, {})
        for (k, kind, day), versions in self.cells.items():
            before = [m for m in versions if m < as_of_day]
            if k == key and before:
                (out.posts if kind == "p" else out.accounts)[day] = versions[max(before)]
        return out

    def write(self, cells: DayCells, as_of_day):
        for day, n in cells.posts.items():
            self.cells[(cells.key, "p", day)][as_of_day] = n

    def latest_posts(self):
        return {(k, day): v[max(v)] for (k, kind, day), v in self.cells.items() if kind == "p"}


def night(table, states, events, as_of_day, *, fresh):
    """What a run at ``as_of_day`` writes (posts), as pipelines.recount computes it: winners of
    ``events`` before M against ``states`` (the post states before M), deltas per (tag, day), values
    from the priors before M. Returns the post states at M."""
    m = layout.midnight_utc(as_of_day)
    winners = {}
    for e in events:
        c = ps.candidate(e)
        if ps.event_time_us(c) < ps.micros(m):
            winners[e.post_id] = ps.later(winners.get(e.post_id), c)
    deltas = collections.Counter()
    new_states = dict(states)
    for post_id, c in winners.items():
        old = None if fresh else states.get(post_id)
        new = ps.state_of(post_id, c)
        if old is not None and not ps.changed(old, new):
            continue
        new_states[post_id] = new
        for key, day, d in day_cells.day_deltas(old, new):
            deltas[(key, day)] += d
    horizon = day_cells.horizon(as_of_day)
    keys = {k for k, _ in deltas} | {k for (k, _, _) in table.cells}
    for key in keys:
        cells = day_cells.day_cells(key, [(d, n) for (k, d), n in deltas.items() if k == key], [],
                                    table.priors(key, D(as_of_day)), fresh=fresh, horizon=horizon,
                                    account_days=DaySpan(0, -1))
        if cells is not None:
            table.write(cells, D(as_of_day))
    return new_states


START = dt.date(2031, 3, 1)
event_st = st.tuples(st.sampled_from(["published", "published", "deleted"]),
                     st.integers(0, 9),  # post
                     st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3),
                     st.integers(0, 6 * 24 - 1),  # event hour from START
                     st.integers(0, 2))  # arrives this many nights late


@hsettings(max_examples=40, deadline=None)
@given(st.lists(event_st, max_size=40))
def test_incremental_nights_equal_a_full_rebuild_and_reruns_change_nothing(raw):
    by_night, instants = collections.defaultdict(list), set()
    for kind, post, tags, hour, late in raw:
        if (post, hour) in instants:  # one event per post and instant: the reference orders by time only
            continue
        instants.add((post, hour))
        t = layout.midnight_utc(START) + dt.timedelta(hours=hour)
        e = PostEvent(kind, f"p{post}", "u", " ".join("#" + x for x in tags), None, t)
        by_night[t.date() + dt.timedelta(days=1 + late)].append(e)  # read by the night after it arrived
    incremental, states, seen = Table(), {}, []
    for n in range(1, 10):
        as_of = START + dt.timedelta(days=n)
        arrived = by_night.get(as_of, [])
        seen += arrived
        before = {k: dict(v) for k, v in incremental.cells.items()}
        new_states = night(incremental, states, arrived, as_of, fresh=False)
        first = {k: dict(v) for k, v in incremental.cells.items()}
        night(incremental, states, arrived, as_of, fresh=False)  # the same night again
        assert {k: dict(v) for k, v in incremental.cells.items()} == first
        assert set(first) >= set(before)
        states = new_states
        rebuilt = Table()
        night(rebuilt, {}, seen, as_of, fresh=True)
        inc = {k: v for k, v in incremental.latest_posts().items() if v}
        assert inc == {k: v for k, v in rebuilt.latest_posts().items() if v}
        posts, _ = reference_days([json.dumps(e.to_json()) for e in seen], layout.midnight_utc(as_of))
        assert inc == {(k, D(d)): v for (k, d), v in posts.items()}
