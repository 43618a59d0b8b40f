"""serving/breaker.py: open after N consecutive store failures, reject without calling for the
cool-down, then exactly one probe; recover by itself."""
from __future__ import annotations

import threading

import pytest

from hashtag_store import SharedFailure, StoreUnavailable
from serving.breaker import Breaker, Bulkhead, CircuitOpen, StoreBusy
from tests.conftest import Clock


class Store:
    def __init__(self):
        self.calls = 0
        self.down = False

    def read(self, key="k"):
        self.calls += 1
        if self.down:
            raise StoreUnavailable("down")
        return key


def test_opens_after_n_consecutive_failures_only():
    clock, store = Clock(), Store()
    b = Breaker(3, 10.0, clock)
    store.down = True
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            b.call(store.read)
    store.down = False
    assert b.call(store.read) == "k"  # a success resets the count
    store.down = True
    for _ in range(3):
        with pytest.raises(StoreUnavailable) as e:
            b.call(store.read)
        assert type(e.value) is StoreUnavailable
    assert b.state == "open" and store.calls == 6
    with pytest.raises(CircuitOpen):
        b.call(store.read)
    assert store.calls == 6 and b.rejected == 1


def test_one_probe_after_the_cool_down_then_closed_or_open_again():
    clock, store = Clock(), Store()
    b = Breaker(1, 10.0, clock)
    store.down = True
    with pytest.raises(StoreUnavailable):
        b.call(store.read)
    clock.now += 9.99
    with pytest.raises(CircuitOpen):
        b.call(store.read)
    clock.now += 0.01
    assert b.state == "half-open"
    with pytest.raises(StoreUnavailable) as e:  # the probe fails: open for another cool-down
        b.call(store.read)
    assert type(e.value) is StoreUnavailable and store.calls == 2 and b.state == "open"
    clock.now += 5
    with pytest.raises(CircuitOpen):
        b.call(store.read)
    clock.now += 5
    store.down = False
    assert b.call(store.read, "x") == "x" and b.state == "closed" and store.calls == 3
    assert b.call(store.read) == "k" and store.calls == 4


def test_exactly_one_probe_while_concurrent_callers_wait_for_nothing():
    clock = Clock()
    b = Breaker(1, 1.0, clock)
    with pytest.raises(StoreUnavailable):
        b.call(_raise)
    clock.now += 1
    started, release = threading.Event(), threading.Event()
    probes = []

    def slow_probe():
        probes.append(1)
        started.set()
        release.wait(10)
        return "ok"

    t = threading.Thread(target=lambda: probes.append(b.call(slow_probe)))
    t.start()
    assert started.wait(10)
    others = []
    for _ in range(20):  # while the probe is in flight, every other caller is answered at once
        try:
            b.call(slow_probe)
        except CircuitOpen:
            others.append("rejected")
    release.set()
    t.join(10)
    assert others == ["rejected"] * 20 and probes == [1, "ok"] and b.state == "closed"


def test_other_exceptions_are_no_verdict_and_free_the_probe():
    clock = Clock()
    b = Breaker(1, 1.0, clock)
    with pytest.raises(StoreUnavailable):
        b.call(_raise)
    clock.now += 1
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    assert b.state == "half-open"  # still waiting for a probe with a verdict
    assert b.call(lambda: "ok") == "ok" and b.state == "closed"
    closed = Breaker(2, 1.0, clock)
    for _ in range(5):
        with pytest.raises(ZeroDivisionError):
            closed.call(lambda: 1 / 0)
    assert closed.state == "closed"


def _raise():
    raise StoreUnavailable("down")


def shared_failure():
    raise SharedFailure("my batch failed")


def test_a_shared_failure_is_no_verdict_except_for_the_probe():
    clock = Clock()
    b = Breaker(2, 10.0, clock)
    for _ in range(10):  # the pages that waited on one failed call
        with pytest.raises(SharedFailure):
            b.call(shared_failure)
    assert b.state == "closed"
    store = Store()
    store.down = True
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            b.call(store.read)
    assert b.state == "open"
    clock.now += 10
    with pytest.raises(SharedFailure):
        b.call(shared_failure)  # the probe's own read failed: open again
    assert b.state == "open"


def test_bulkhead_refuses_at_once_when_full_and_the_store_is_slow():
    clock = Clock()
    bh = Bulkhead(2, slow=0.1, clock=clock)
    entered, release = threading.Barrier(3), threading.Event()

    def stuck():
        entered.wait(5)
        release.wait(10)
        return "late"

    threads = [threading.Thread(target=bh.call, args=(stuck,)) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait(5)  # both slots held
    clock.now += 0.1  # ... for as long as "slow"
    calls = []
    with pytest.raises(StoreBusy):
        bh.call(lambda: calls.append(1))
    assert calls == [] and bh.refused == 1
    release.set()
    for t in threads:
        t.join(10)
    assert bh.call(lambda: "now") == "now"  # slots free again


def test_bulkhead_waits_for_a_slot_while_reads_are_quick():
    clock = Clock()
    bh = Bulkhead(1, slow=5.0, clock=clock)
    entered, release = threading.Event(), threading.Event()

    def held():
        entered.set()
        release.wait(10)
        return "first"

    t = threading.Thread(target=bh.call, args=(held,))
    t.start()
    entered.wait(5)
    threading.Timer(0.05, release.set).start()  # the slot frees while the second call waits
    assert bh.call(lambda: "second") == "second" and bh.refused == 0
    t.join(10)
