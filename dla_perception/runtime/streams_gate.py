"""One run at a time on a core that runs one task at a time, granted by stream priority across models.

A DLA core executes one task at a time whatever the number of engines loaded on it, and a `cpuN` test core
is one thread. Each (model, core) has its own worker, so without a gate two models' workers on dla0 would
queue in the driver in arrival order, and on cpu0 they would share the thread by time slices: the
front camera's head would wait behind a side camera's features. The gate hands the core to the waiting
worker whose best queued request has the lowest `schedule_key` (runtime/dispatch.py) *at the moment the
core is free*: a waiter is a key function over its worker's queue, not a request it took out beforehand, so
a higher-priority request queued while the worker waits is the one it runs (issue 19: a side camera's
request waiting for the core ahead of the front camera's newer one of the same model was an inversion).
The GPU and the plain `cpu` (a thread pool) run engines concurrently and have no gate.

A waiter gives up at `until` (its queue's earliest deadline: its worker then takes the late requests out
for retry elsewhere or a stale drop), or at once when its queue has nothing left to run, so a hung engine
holding the gate delays the other models on its core by at most their deadline, never forever.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

_tickets = itertools.count()

KeyOf = Callable[[float], Any]  # now -> the waiter's best key, or None when it has nothing to run


class _Waiter:
    __slots__ = ("key_of", "ticket", "empty")

    def __init__(self, key_of: KeyOf) -> None:
        self.key_of = key_of
        self.ticket = next(_tickets)
        self.empty = False


class CoreGate:
    """A priority lock: when free, it is granted to the waiter whose key (asked then) is lowest.

    Lock order: the gate's lock, then whatever a key function takes (a worker's lock); a worker therefore
    calls poke() only after releasing its own lock.
    """

    def __init__(self, core: str) -> None:
        self.core = core
        self._cond = threading.Condition(threading.Lock())
        self._busy = False
        self._waiting: list[_Waiter] = []
        self._granted: _Waiter | None = None
        self.members: list[Any] = []  # the workers of every model on this core (Worker.ahead)
        self.waits = 0  # acquisitions that had to wait: a measure of contention

    def acquire(self, key_of: KeyOf, until: float) -> bool:
        """Wait for the core until `until` (time.monotonic()); False when the wait timed out or the
        waiter's queue ran empty (key_of returned None) before its turn."""
        with self._cond:
            if not self._busy and not self._waiting and self._granted is None:
                self._busy = True
                return True
            self.waits += 1
            waiter = _Waiter(key_of)
            self._waiting.append(waiter)
            self._elect()
            try:
                while True:
                    if self._granted is waiter:
                        self._granted = None
                        self._busy = True
                        return True
                    if waiter.empty:
                        return False
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._waiting.remove(waiter)
                if self._granted is waiter:  # granted as it timed out: hand it on
                    self._granted = None
                if not self._busy:
                    self._elect()

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._elect()

    def poke(self) -> None:
        """A waiter's queue changed (a request arrived): elect again if the core is free."""
        with self._cond:
            if not self._busy and self._granted is None and self._waiting:
                self._elect()

    def _elect(self) -> None:
        """Grant the free core to the best waiter, asking each its key now. Caller holds the lock."""
        if self._busy or self._granted is not None or not self._waiting:
            return
        now = time.monotonic()
        best: tuple[Any, int] | None = None
        for waiter in self._waiting:
            key = waiter.key_of(now)
            if key is None:
                waiter.empty = True
                continue
            if best is None or (key, waiter.ticket) < best:
                best, self._granted = (key, waiter.ticket), waiter
        self._cond.notify_all()

    def load(self, key: Any = None) -> int:
        """What runs before a new request with `key` on this core: the running one and, over every
        model's worker, the queued ones with a better key (all queued ones when None)."""
        return self._busy + sum(member.ahead(key) for member in list(self.members))

    @property
    def busy(self) -> bool:
        return self._busy

    def waiting(self) -> int:
        return len(self._waiting)
