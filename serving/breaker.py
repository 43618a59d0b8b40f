"""A circuit breaker for the store reads of one process.

Closed: every read goes to the store; ``failures`` consecutive StoreUnavailable open the circuit.
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

from hashtag_store import StoreUnavailable

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
        """``read(*args)`` if the circuit lets it through; StoreUnavailable from it counts as a failure,
        any other exception is no verdict on the store (it frees the probe slot and propagates)."""
        probe = self._admit()
        try:
            result = read(*args)
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
