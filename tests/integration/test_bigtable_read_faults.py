"""Faults on the page read path against the Bigtable emulator (issue 21): the real BigtableStore,
coalescer and channel; the fault is injected at the RPC (the page reader's ``read_many``, one
ReadRows call): chosen calls wait on a gate and/or fail as a deadline would, every other call goes
to the emulator.

- one failed batch of many reads is ONE failure for the circuit breaker (it used to be one per page);
- a slow call delays only its own batch: another read completes while it is held;
- the channel is replaced on schedule (an injected clock), warmed first, the old one closed after
  the grace period, with reads going on throughout and none failing; /readyz's read rides the same
  channel as the pages.
"""
from __future__ import annotations

import datetime as dt
import threading

import grpc
import pytest

from hashtag_store import BigtableStore, SharedFailure, StoreUnavailable
from hashtag_store.bigtable import GRACE_SECONDS, REFRESH_MAX_SECONDS, _Channel, _new_grpc_channel
from hashtags.layout import TopPost
from hashtags.messages import TopPostsUpdate
from serving.breaker import CLOSED, OPEN, Breaker
from devstack.emulators import free_port
from tests.conftest import INSTANCE, PROJECT, Clock

pytestmark = pytest.mark.emulator
UTC = dt.timezone.utc
DAY = dt.datetime(2026, 11, 22, tzinfo=UTC)


def fill(store, n: int) -> list[str]:
    keys = [f"f{i:03d}" for i in range(n)]
    store.write_base_counts([(k, 100 + i) for i, k in enumerate(keys)], as_of=DAY)
    return keys


class Faults:
    """Wraps the page reader's read_many: call number i (0-based) waits for ``gates[i]`` if there
    is one, then fails if i is in ``fail`` (a deadline, as the reader raises it), else reads."""

    def __init__(self, store: BigtableStore, gates: dict[int, threading.Event] | None = None, fail=()):
        self.real = store._page_reader.read_many
        self.gates = gates or {}
        self.fail = set(fail)
        self.batches: list[list[bytes]] = []
        self.entered: dict[int, threading.Event] = {i: threading.Event() for i in range(64)}
        self.lock = threading.Lock()
        store._page_reader.read_many = self

    def __call__(self, keys, **kw):
        with self.lock:
            i = len(self.batches)
            self.batches.append(sorted(keys))
        self.entered[i].set()
        if i in self.gates:
            assert self.gates[i].wait(30)
        if i in self.fail:
            raise TimeoutError("injected: no answer within the deadline")
        return self.real(keys, **kw)


def run(fn, *args) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go():
        try:
            out["value"] = fn(*args)
        except Exception as e:  # noqa: BLE001 - the outcome is the assertion
            out["error"] = e

    t = threading.Thread(target=go)
    t.start()
    return t, out


def test_one_failed_batch_of_many_reads_opens_no_circuit(store):
    keys = fill(store, 24)
    breaker = Breaker(failures=5, cool_down=5.0)  # production's Settings defaults
    slots = store._pages._max_in_flight  # Settings.read_batches_in_flight's default, 2
    gates = {i: threading.Event() for i in range(slots)}
    faults = Faults(store, gates=gates, fail={slots})
    # slow calls hold every slot ...
    first = [run(breaker.call, store.read_page, k) for k in keys[:slots]]
    for i in range(slots):
        assert faults.entered[i].wait(10)
    # ... twenty reads queue up behind them, and go as ONE call when a slot frees: it fails
    queued = [run(breaker.call, store.read_page, k) for k in keys[slots:slots + 20]]
    while len(store._pages._queue) < 20:
        threading.Event().wait(0.005)
    gates[0].set()
    for t, _ in queued:
        t.join(30)
    for g in gates.values():
        g.set()
    for t, _ in first:
        t.join(30)
    assert faults.batches[slots] == sorted(k.encode() for k in keys[slots:slots + 20])  # one call for the twenty
    errors = [out["error"] for _, out in queued]
    assert len(errors) == 20 and all(isinstance(e, StoreUnavailable) for e in errors)
    assert sum(isinstance(e, SharedFailure) for e in errors) == 19  # all but the read that sent it
    assert [out["value"].total_posts for _, out in first] == [100 + i for i in range(slots)]
    assert breaker.state == CLOSED and breaker.rejected == 0
    assert breaker.call(store.read_page, keys[10]).total_posts == 110  # the next read goes to the store

    # failed CALLS still open it: five in a row
    Faults(store, fail=range(5))
    for k in keys[:5]:
        with pytest.raises(StoreUnavailable):
            breaker.call(store.read_page, k)
    assert breaker.state == OPEN


def test_a_slow_call_delays_only_its_batch(store):
    keys = fill(store, 3)
    gate = threading.Event()
    faults = Faults(store, gates={0: gate})
    slow, slow_out = run(store.read_page, keys[0])
    assert faults.entered[0].wait(10)
    # while that call is held, an unrelated read completes over another slot
    t, out = run(store.read_page, keys[1])
    t.join(30)
    assert not t.is_alive() and out["value"].total_posts == 101
    assert slow.is_alive() and slow_out == {}  # still held: the answer did not wait for it
    assert store.read_page(keys[2]).total_posts == 102
    gate.set()
    slow.join(30)
    assert slow_out["value"].total_posts == 100
    assert faults.batches == [[b"f000"], [b"f001"], [b"f002"]]


class Created:
    """Records the channels the store's _Channel creates (real channels to the emulator)."""

    def __init__(self):
        self.channels: list[grpc.Channel] = []

    def __call__(self) -> grpc.Channel:
        ch = _new_grpc_channel()
        self.channels.append(ch)
        return ch


def test_the_channel_is_replaced_on_schedule_warmed_first_with_no_failed_read(bigtable_emulator, table_name):
    from hashtag_store import create_table

    create_table(PROJECT, INSTANCE, table_name)
    clock, created = Clock(), Created()
    channel = _Channel(clock=clock, rand=lambda lo, hi: hi, create=created)
    store = BigtableStore(PROJECT, INSTANCE, table_name, channel=channel)
    keys = fill(store, 8)
    store.write_top_posts(TopPostsUpdate(keys[0], DAY, (TopPost("p1", "https://img.example.com/1.jpg"),)))
    assert store._ping_reader.channel is store._page_reader.channel is channel  # /readyz sees the pages' channel

    stop = threading.Event()
    answers: list[int] = []
    failures: list[BaseException] = []

    def reader(n: int) -> None:
        i = 0
        while not stop.is_set() or i < 5:
            try:
                answers.append(store.read_page(keys[(n + i) % len(keys)]).total_posts)
                store.ping()
            except Exception as e:  # noqa: BLE001 - asserted empty below
                failures.append(e)
            i += 1

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        while len(answers) < 20:
            threading.Event().wait(0.01)
        first = channel.get()
        assert created.channels == [first] and channel.generation == 1
        clock.now += REFRESH_MAX_SECONDS - 1  # not yet
        n = len(answers)
        while len(answers) < n + 20:
            threading.Event().wait(0.01)
        assert channel.generation == 1
        clock.now += 1  # due: the next read starts the refresh; reads go on over the old channel
        while channel.generation == 1:
            threading.Event().wait(0.01)
        second = channel.get()
        assert second is not first and created.channels == [first, second]
        n = len(answers)
        while len(answers) < n + 20:  # reads over the new channel
            threading.Event().wait(0.01)
        assert store._page_reader._bound[0] is second and store._ping_reader._bound[0] is second
        # the old channel stays open for calls still on it, for the grace period, then is closed
        clock.now += GRACE_SECONDS - 1
        store.read_page(keys[0])
        first.unary_unary("/google.bigtable.v2.Bigtable/PingAndWarm")  # still usable: open
        clock.now += REFRESH_MAX_SECONDS  # past the grace period, and the next refresh is due
        n = len(answers)
        while len(answers) < n + 20 or channel.generation < 3:
            threading.Event().wait(0.01)
        with pytest.raises(ValueError, match="closed channel"):
            first.unary_stream("/google.bigtable.v2.Bigtable/ReadRows")(b"", timeout=1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert len(created.channels) == 3 and channel.generation == 3
    assert set(answers) == {100 + i for i in range(8)}
    store.close()


def test_a_channel_that_cannot_be_warmed_is_not_swapped_in(store, monkeypatch):
    keys = fill(store, 1)
    clock = Clock()
    channel = _Channel(clock=clock, rand=lambda lo, hi: lo)
    other = BigtableStore(PROJECT, INSTANCE, store._table_id, channel=channel)
    assert other.read_page(keys[0]).total_posts == 100
    good = channel.get()
    # the next channel goes where nothing listens: its warm-up read fails
    monkeypatch.setenv("BIGTABLE_EMULATOR_HOST", f"localhost:{free_port()}")
    clock.now += REFRESH_MAX_SECONDS
    assert other.read_page(keys[0]).total_posts == 100  # served over the current channel meanwhile
    channel.join_refresh(30)
    assert channel.get() is good and channel.generation == 1
    assert other.read_page(keys[0]).total_posts == 100
    other.close()
