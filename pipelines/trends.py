"""The streaming job's live-accounts and trends branches (issue 19; docs/TRENDS.md).

``LiveAccounts``: post events → distinct accounts per tag per hour window (same windows, triggers
and lateness as the hour counts, ACCUMULATING), written by ``HourAccountsRow`` as SetCells of
``counts:u.<gen>`` at the window start: idempotent and generation-safe like ``counts:h.<gen>``.
Exact: the accumulator is the set of 64-bit account hashes (hashtags.trends.account_id); its size
per hot tag is measured in docs/BENCHMARKS.md "Trends".

``TrendScores``: post events → per tag per minute (accounts, posts), combined before the shuffle
(combiner lifting: a hot tag is one accumulator per bundle, not one element per post) → a stateful
DoFn per tag (``ScoreTags``: at most one input per tag-minute, so a hot tag is not a hot key) that
evaluates hashtags.trends on event-time timers (every minute while the tag is listed) → each minute's scores in a
1-minute window → ``CombineGlobally`` (lifted: each bundle sends one accumulator) keeps the best
``CANDIDATES`` → ``ReviewTrends``
reads those tags' rows in ONE ReadRows (flags: hidden and rejected tags are dropped, the review state
is kept; the 7-day history the tag page shows) → ONE SetCell of the reserved ``\\x00trends`` row at
that minute.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from hashtag_store import mutations
from hashtags import history, layout, settings, trends
from pipelines import clients
from pipelines.transforms import DEAD, dead_letter


def account_uses(event):
    """A published post's (key, (account hash, spelling)) per DISTINCT tag; deletes add no use."""
    if event.delta <= 0:
        return
    account = trends.account_id(event.user_id)
    for key, spelling in event.tags():
        yield key, (account, spelling)


class DistinctAccountsFn(beam.CombineFn):
    """(account, spelling) values → number of distinct accounts. The accumulator is the set."""

    def create_accumulator(self):
        return set()

    def add_input(self, acc, value):
        acc.add(value[0])
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs)
        for a in accs:
            out |= a
        return out

    def extract_output(self, acc):
        return len(acc)


def _hour_windows(window_seconds, allowed_lateness_seconds, early_firing_seconds, late_trigger):
    return beam.WindowInto(
        window.FixedWindows(window_seconds),
        trigger=trigger.AfterWatermark(early=trigger.AfterProcessingTime(early_firing_seconds), late=late_trigger),
        accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=Duration(seconds=allowed_lateness_seconds))


class HourAccounts(NamedTuple):
    key: str
    window_start: dt.datetime
    accounts: int
    pane_index: int


class _WithHourStart(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        key, n = element
        yield HourAccounts(key, dt.datetime.fromtimestamp(float(win.start), tz=layout.UTC), n,
                           pane.index if pane is not None else 0)


class LiveAccounts(beam.PTransform):
    """Post events (event-time stamped) → HourAccounts per firing (the windows of WindowedTagCounts)."""

    def __init__(self, window_seconds=3600, allowed_lateness_seconds=6 * 3600, early_firing_seconds=60,
                 late_trigger=None):
        super().__init__()
        self._windows = (window_seconds, allowed_lateness_seconds, early_firing_seconds,
                         late_trigger or trigger.AfterProcessingTime(early_firing_seconds))

    def expand(self, events):
        return (events
                | "AccountHourWindows" >> _hour_windows(*self._windows)
                | "AccountUses" >> beam.FlatMap(account_uses)
                | "DistinctAccounts" >> beam.CombinePerKey(DistinctAccountsFn())
                | "WithHourStart" >> beam.ParDo(_WithHourStart()))


class HourAccountsRow(beam.DoFn):
    """HourAccounts → one DirectRow (``counts:u.<generation>``); unbuildable → DEAD output."""

    def __init__(self, generation: int = 0):
        layout.accounts_column(generation)  # a bad generation fails at construction
        self.generation = generation
        self._failed = Metrics.counter("hashtags", "bigtable_account_rows_failed")

    def process(self, element):
        try:
            row = mutations.hour_accounts_row(element.key, element.window_start, element.accounts,
                                              generation=self.generation)
        except Exception as e:  # any input: the DoFn must not raise
            self._failed.inc()
            data = json.dumps({"key": element.key, "window_start": element.window_start.isoformat(),
                               "accounts": element.accounts}, ensure_ascii=True, default=str).encode("ascii")
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(data, None, f"row not built: {type(e).__name__}: {e}",
                                                             "hour-accounts"))
            return
        yield row


# ---- trends ---------------------------------------------------------------------------------------
class MinuteUse(NamedTuple):
    minute_ms: int
    accounts: frozenset
    posts: int
    display: str | None


class MinuteUseFn(beam.CombineFn):
    """(account, spelling) → (accounts set, posts, a spelling). Lifted before the shuffle."""

    def create_accumulator(self):
        return (set(), 0, None)

    def add_input(self, acc, value):
        accounts, posts, display = acc
        account, spelling = value
        accounts.add(account)
        if spelling is not None and (display is None or spelling < display):
            display = spelling
        return (accounts, posts + 1, display)

    def merge_accumulators(self, accs):
        accounts, posts, display = set(), 0, None
        for a, n, d in accs:
            accounts |= a
            posts += n
            if d is not None and (display is None or d < display):
                display = d
        return (accounts, posts, display)

    def extract_output(self, acc):
        return acc


class _WithMinute(beam.DoFn):
    def process(self, element, win=beam.DoFn.WindowParam):
        key, (accounts, posts, display) = element
        yield key, MinuteUse(int(win.start.micros // 1000), frozenset(accounts), posts, display)


class ScoreTags(beam.DoFn):
    """Per tag: the TagState (hashtags.trends) in keyed state; an event-time timer at a minute
    boundary (after a minute the tag was used in, every minute while it is listed, at hour
    boundaries otherwise) evaluates it and emits the tag's TrendEntry, timestamped at that minute,
    while it scores (and once with score 0 when it stops, so the minute's list is still written
    when it empties).

    ``bigtable`` (project_id/instance_id/table_id): where a tag's stored hour accounts are read the
    first time this job's state sees it, so a relaunch (empty state) keeps each tag's baseline.
    None: no seeding (tests of the pure stream; every tag starts cold).

    ``clock_watermark``: the input's watermark is the wall clock (the local reader,
    pipelines/local_reader.py), and the runner does not hold it for a timer's output (the
    BundleBasedDirectRunner). Then a score for a minute more than SCORE_LATENESS_SECONDS behind the
    clock is dropped as too late by the minute's list, and evaluating it only costs: a timer is
    never set before that horizon (:func:`_not_before_the_horizon`). Past-stamped traffic (a test's
    90 minutes at once, a catch-up) then costs one evaluation per tag, not one per minute per listed
    tag (measured: 2,009 scoring bundles, each followed by four more, for the 2,400 events of
    test_streaming_job). Off under TestStream and on Dataflow (its watermark holds a timer's output;
    every minute's list is written)."""

    STATE = ReadModifyWriteStateSpec("trend", PickleCoder())
    EVALUATE = TimerSpec("evaluate", TimeDomain.WATERMARK)

    def __init__(self, bigtable: dict | None = None, app_profile: str | None = None,
                 clock_watermark: bool = False):
        self._bigtable = bigtable
        self._app_profile = app_profile
        self._clock_watermark = clock_watermark
        self._store = None
        self._seeded = Metrics.counter("hashtags", "trend_tags_seeded")
        self._seed_failed = Metrics.counter("hashtags", "trend_seed_failed")

    def setup(self):
        if self._bigtable:
            self._store = clients.bigtable_store(self._bigtable, self._app_profile, read_timeout=5.0)

    def _seed(self, key: str, state: trends.TagState, before_ms: int) -> None:
        state.seeded = True
        if self._store is None:
            return
        try:
            doc = self._store.read_pages([key]).get(key)
        except Exception:  # the store is down: this tag starts cold (counted; never kills the job)
            self._seed_failed.inc()
            return
        if doc is not None:
            self._seeded.inc()
            trends.seed(state, {layout.to_millis(h.start): h.posts for h in doc.accounts
                                if layout.to_millis(h.start) < before_ms})

    def process(self, element, state=beam.DoFn.StateParam(STATE), timer=beam.DoFn.TimerParam(EVALUATE)):
        key, use = element
        st = state.read() or trends.TagState()
        if not st.seeded:
            self._seed(key, st, trends.hour_floor(use.minute_ms))
        trends.add(st, use.minute_ms, use.accounts, use.posts, use.display)
        # evaluate at the end of this minute (not before the horizon), never at or before the last
        # evaluation (late data counts at the next one; a minute is evaluated once), unless the
        # pending timer comes sooner
        due = max(self._not_before_the_horizon(use.minute_ms + trends.MINUTE_MS), st.evaluated_at + trends.MINUTE_MS)
        if st.next_evaluation <= st.evaluated_at or due < st.next_evaluation:
            st.next_evaluation = due
            timer.set(Timestamp(micros=due * 1000))
        state.write(st)

    @on_timer(EVALUATE)
    def evaluate(self, key=beam.DoFn.KeyParam, state=beam.DoFn.StateParam(STATE),
                 timer=beam.DoFn.TimerParam(EVALUATE), ts=beam.DoFn.TimestampParam):
        st = state.read()
        if st is None:
            return
        now = int(ts.micros // 1000)
        ev = trends.evaluate(st, now)
        if ev.score > 0 or st.listed:
            st.listed = ev.score > 0
            yield window.TimestampedValue(
                trends.TrendEntry(key, st.display or key, ev.score, ev.accounts, ev.uses), now / 1000)
        if st.alive() and not _past_the_clock(now):
            # a listed tag every minute (its peak decays); a tag that does not score can only start
            # to with new data (which sets its own timer) or when its baseline hour changes
            st.next_evaluation = self._not_before_the_horizon(
                now + trends.MINUTE_MS if st.listed else trends.hour_floor(now) + trends.HOUR_MS)
            timer.set(Timestamp(micros=st.next_evaluation * 1000))
            state.write(st)
        elif st.alive():
            state.write(st)  # the end of time: no more minutes to evaluate (see _past_the_clock)
        else:
            state.clear()  # nothing in the window, no peak: a later use reseeds from the table

    def _not_before_the_horizon(self, due_ms: int) -> int:
        if not self._clock_watermark:
            return due_ms
        return max(due_ms, trends.minute_floor(int(time.time() * 1000)) - SCORE_LATENESS_SECONDS * 1000
                   + trends.MINUTE_MS)


def _past_the_clock(now_ms: int) -> bool:
    """Whether an evaluation time is beyond any event the job can still receive (events more than
    settings.MAX_FUTURE_SKEW after the clock are dead letters). The watermark gets there only when
    it jumps to the end of time: a Dataflow drain, or the local job's stop (pipelines/local_reader.py).
    A listed tag's minute timer would then loop through every minute until its peak decays (about a
    day of minutes per tag, which kept the local job from stopping within 90 s): it stops instead."""
    horizon = settings.MAX_FUTURE_SKEW.total_seconds() * 1000 + trends.MINUTE_MS
    return now_ms > time.time() * 1000 + horizon


class TopTrendsFn(beam.CombineFn):
    """The best CANDIDATES scores of a minute (zero entries only make the minute's list exist)."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, entry):
        acc.append(entry)
        return trends.top(acc) if len(acc) > 2 * trends.CANDIDATES else acc

    def merge_accumulators(self, accs):
        return trends.top([e for a in accs for e in a])

    def extract_output(self, acc):
        return trends.top(acc)


class ReviewTrends(beam.DoFn):
    """A minute's candidates → the reserved row: hidden and rejected tags dropped, each entry's
    review state and 7-day history (the tag page's, hashtags.history) from ONE read of their rows.

    ``bigtable`` None: no review data (every entry pending, no history)."""

    def __init__(self, bigtable: dict | None = None, app_profile: str | None = None):
        self._bigtable = bigtable
        self._app_profile = app_profile
        self._store = None
        self._failed = Metrics.counter("hashtags", "trend_review_read_failed")

    def setup(self):
        if self._bigtable:
            self._store = clients.bigtable_store(self._bigtable, self._app_profile, read_timeout=10.0)

    def process(self, candidates, win=beam.DoFn.WindowParam):
        at = dt.datetime.fromtimestamp(float(win.start), tz=layout.UTC)
        docs = {}
        if self._store is not None and candidates:
            try:
                docs = self._store.read_pages([e.tag for e in candidates])
            except Exception:  # no list this minute rather than an unreviewed one; the next minute retries
                self._failed.inc()
                return
        yield mutations.trends_row(at, reviewed(candidates, docs, at))


def reviewed(candidates, docs: dict, at: dt.datetime) -> list[trends.TrendEntry]:
    out = []
    for e in candidates:
        doc = docs.get(e.tag)
        flags = doc.flags if doc is not None else layout.Flags()
        state = trends.review_state(flags.hidden, flags.trend)
        if state is None:
            continue
        days = ()
        if doc is not None:
            days = tuple(trends.TrendDay(d.day, d.posts, d.accounts if d.accounts is not None else min(d.posts, 1))  # Mastodon's lower bound
                         for d in history.usage_history(doc, at).days)
        out.append(trends.TrendEntry(e.tag, doc.display_name if doc is not None else e.name, e.score,
                                     e.accounts, e.uses, state, days))
    return out[:trends.LIST_MAX]


SCORE_LATENESS_SECONDS = 300


class RankedTrends(beam.PTransform):
    """Post events → per 1-minute window (the evaluation minute), the best CANDIDATES TrendEntries
    (a list; empty when the last trending tag stopped in that minute)."""

    def __init__(self, bigtable: dict | None = None, *, app_profile: str | None = None,
                 allowed_lateness_seconds=6 * 3600, clock_watermark: bool = False):
        super().__init__()
        self._bigtable, self._app_profile = bigtable, app_profile
        self._clock_watermark = clock_watermark  # ScoreTags
        # A pane later than USEFUL_LATENESS cannot change a score (hashtags.trends.add): holding the
        # minute windows' state for the job's full lateness (6 h) would only cost memory and time.
        self._lateness = min(allowed_lateness_seconds, trends.USEFUL_LATENESS_MS // 1000)
        # Late panes fire at once (AfterCount(1)), in the minute windows and in the lists: with a
        # processing-time late trigger the local runner kept each late pane's watermark hold (its
        # trigger driver adds a hold per window and has no late-data hold handling: Beam 2.77
        # transforms/trigger.py "TODO(ccy): Add late data and garbage-collection hold support"), the
        # scoring step's timers stopped and the running local stack wrote no list after start-up's
        # past-stamped sample (observed 2026-12-08: one list, then none for 6 minutes, while every
        # step kept running). A late pane is rare on Dataflow and costs one more scoring input there.
        self._late = trigger.AfterCount(1)

    def expand(self, events):
        return (events
                | "MinuteWindows" >> beam.WindowInto(
                    window.FixedWindows(60), trigger=trigger.AfterWatermark(late=self._late),
                    accumulation_mode=trigger.AccumulationMode.DISCARDING,
                    allowed_lateness=Duration(seconds=self._lateness))
                | "TrendUses" >> beam.FlatMap(account_uses)
                | "MinuteUses" >> beam.CombinePerKey(MinuteUseFn())
                | "WithMinute" >> beam.ParDo(_WithMinute())
                | "TagStateWindow" >> beam.WindowInto(window.GlobalWindows())
                | "ScoreTags" >> beam.ParDo(ScoreTags(self._bigtable, self._app_profile, self._clock_watermark))
                # The local runner does not hold the watermark for a timer's output (Dataflow does): a
                # minute's scores may arrive late; each late one re-fires the whole minute's list.
                | "ScoreMinutes" >> beam.WindowInto(
                    window.FixedWindows(60), trigger=trigger.AfterWatermark(late=self._late),
                    accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                    allowed_lateness=Duration(seconds=SCORE_LATENESS_SECONDS))
                | "RankTrends" >> beam.CombineGlobally(TopTrendsFn()).without_defaults())


class TrendScores(beam.PTransform):
    """Post events → the trends row (DirectRow), one per minute with candidates (see the module)."""

    def __init__(self, bigtable: dict | None = None, *, app_profile: str | None = None, **ranking):
        super().__init__()
        self._bigtable, self._app_profile = bigtable, app_profile
        self._ranking = ranking

    def expand(self, events):
        return (events
                | "RankedTrends" >> RankedTrends(self._bigtable, app_profile=self._app_profile, **self._ranking)
                | "ReviewTrends" >> beam.ParDo(ReviewTrends(self._bigtable, self._app_profile)))


def build(events, opts, bt: dict, *, clock_watermark: bool = False) -> list:
    """The streaming job's live-accounts and trends branches (``streaming_main`` calls this beside
    the hour counts); returns the dead letters of the account rows. ``opts``: StreamingOptions.
    ``bt``: the job's table and app profile (``app_profile_id``): the writes go through it, and so do
    the reads of what the job itself wrote (seeds, review flags), on the writers' single cluster.
    ``clock_watermark``: the local reader's job (see ScoreTags)."""
    from pipelines.bigtable_write import WriteRows

    rows = (events
            | "LiveAccounts" >> LiveAccounts(opts.window_seconds, opts.allowed_lateness_seconds,
                                             opts.early_firing_seconds,
                                             late_trigger=trigger.AfterProcessingTime(opts.late_firing_seconds))
            | "AccountRows" >> beam.ParDo(HourAccountsRow(opts.count_generation)).with_outputs(DEAD, main="rows"))
    rows.rows | "WriteAccounts" >> WriteRows(**bt)
    (events
     | "Trends" >> TrendScores(bt, app_profile=bt.get("app_profile_id"),
                               allowed_lateness_seconds=opts.allowed_lateness_seconds,
                               clock_watermark=clock_watermark)
     | "WriteTrends" >> WriteRows(**bt))
    return [rows[DEAD]]
