"""A circuit breaker for the store reads of one process, and the bulkhead that keeps threads free.

Closed: every read goes to the store; ``failures`` consecutive failed store calls open the circuit.
A failure counts once per RPC: the store's batched page read fails every page of a failed batch,
and all but the one that sent the call get :class:`hashtag_store.SharedFailure`, which is no verdict
(issue 21: one failed batch of 64 pages used to open the circuit for everyone).
Open: no read goes to the store for ``cool_down`` seconds; callers get :class:`CircuitOpen` at once
(the views answer with the last good copy or 503 + Retry-After). After the cool-down the circuit is
half-open: exactly ONE caller (the probe) reads, every other caller still gets CircuitOpen; the
probe's success closes the circuit, its failure opens it for another cool-down. Why not pybreaker:
docs/SERVING.md "Store outage".
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from hashtag_store import SharedFailure, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitOpen(StoreUnavailable):
    """The read was not attempted: the circuit is open (or another caller is probing)."""


class Breaker:
    def __init__(self, failures: int, cool_down: float, clock: Callable[[], float] = time.monotonic):
        self.failures = max(1, failures)
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = 0  # consecutive failures while closed
        self._opened_at: float | None = None  # None: closed
        self._probing = False
        self.rejected = 0  # calls answered without a store read (for tests and the benchmark)

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return CLOSED
            return HALF_OPEN if self._probing or self._clock() - self._opened_at >= self.cool_down else OPEN

    def call(self, read: Callable[..., T], *args) -> T:
        """``read(*args)`` if the circuit lets it through; StoreUnavailable from it counts as a failure
        (SharedFailure only for the probe), any other exception is no verdict on the store (it frees
        the probe slot and propagates)."""
        probe = self._admit()
        try:
            result = read(*args)
        except SharedFailure:
            if probe:
                self._failure(probe)
            raise
        except StoreUnavailable:
            self._failure(probe)
            raise
        except BaseException:
            if probe:
                with self._lock:
                    self._probing = False
            raise
        self._success(probe)
        return result

    def _admit(self) -> bool:
        """True if this call is the probe, False for a normal closed-state call; raises CircuitOpen."""
        with self._lock:
            if self._opened_at is None:
                return False
            if self._probing or self._clock() - self._opened_at < self.cool_down:
                self.rejected += 1
                raise CircuitOpen("circuit open: the store failed %d times in a row" % self.failures)
            self._probing = True
            return True

    def _failure(self, probe: bool) -> None:
        with self._lock:
            if probe:
                self._probing = False
                self._opened_at = self._clock()
                log.warning("store probe failed: circuit open for another %.1f s", self.cool_down)
                return
            if self._opened_at is not None:  # a read started before the circuit opened
                return
            self._failed += 1
            if self._failed >= self.failures:
                self._opened_at = self._clock()
                log.warning("store failed %d times in a row: circuit open for %.1f s", self._failed, self.cool_down)

    def _success(self, probe: bool) -> None:
        with self._lock:
            self._failed = 0
            if probe:
                self._probing = False
                self._opened_at = None
                log.warning("store probe succeeded: circuit closed")


class StoreBusy(StoreUnavailable):
    """The read was not attempted: the store is slow and the threads it may hold are all waiting."""


class Bulkhead:
    """Keeps threads for cached pages and everything else that does not need the store while the
    store hangs: at most ``limit`` threads wait on store reads once the oldest of them has waited
    ``slow`` seconds; a read beyond that is refused at once (StoreBusy: the last good copy or 503, no
    verdict on the store for the breaker). While reads are quick, a read beyond the limit waits up
    to ``slow`` seconds for a slot.

    Why: the server has a fixed pool of blocking threads (WEB_THREADS, granian's); with the store
    paused every thread waited up to the read deadline (issue 21). With ``limit`` = threads - 2, two
    threads go on answering from the cache. ``slow`` = 0.5 s: a quarter of the read deadline, 25 x
    Bigtable's usual p99; at 0.1 s the benchmark's saturated emulator (2 shared cores, p50 140 ms)
    had a third of its uncached requests refused (docs/BENCHMARKS.md "Web tier, long tail").
    ``clock`` (injectable) dates the waits; the wait for a slot is real time."""

    def __init__(self, limit: int, slow: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.limit = max(1, limit)
        self.slow = slow
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._started: dict[int, float] = {}  # thread id -> when it started waiting on the store
        self.refused = 0  # reads refused (for tests, the metrics and the benchmark)

    def call(self, read: Callable[..., T], *args) -> T:
        me = threading.get_ident()
        with self._cond:
            if len(self._started) >= self.limit:
                self._wait_for_slot()
            self._started[me] = self._clock()
        try:
            return read(*args)
        finally:
            with self._cond:
                del self._started[me]
                self._cond.notify()

    def _wait_for_slot(self) -> None:
        until = time.monotonic() + self.slow
        while len(self._started) >= self.limit:
            left = until - time.monotonic()
            if left <= 0 or self._clock() - min(self._started.values()) >= self.slow:
                self.refused += 1
                raise StoreBusy(f"store slow: {len(self._started)} threads already waiting on it")
            self._cond.wait(left)
