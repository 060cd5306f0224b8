"""One run at a time on a core that runs one task at a time, granted by stream priority across models.

A DLA core executes one task at a time whatever the number of engines loaded on it, and a `cpuN` test core
is one thread. Each (model, core) has its own worker, so without a gate two models' workers on dla0 would
queue in the driver in arrival order, and on cpu0 they would share the thread by time slices: the
front camera's head would wait behind a side camera's features. The gate hands the core to the waiting
request with the best `schedule_key` (runtime/dispatch.py) instead. The GPU and the plain `cpu` (a thread
pool) run engines concurrently and have no gate.

A waiter gives up at its request's deadline (the caller retries elsewhere or drops it as stale), so a hung
engine holding the gate delays the other models on its core by at most their deadline, never forever.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from typing import Any

_tickets = itertools.count()


class CoreGate:
    """A priority lock: acquire(key, until) is granted to the lowest key among the waiters."""

    def __init__(self, core: str) -> None:
        self.core = core
        self._cond = threading.Condition(threading.Lock())
        self._busy = False
        self._waiting: list[tuple[Any, int]] = []  # sorted (key, ticket)
        self.waits = 0  # acquisitions that had to wait: a measure of contention

    def acquire(self, key: Any, until: float) -> bool:
        """Wait for the core until `until` (time.monotonic()); False when the wait timed out."""
        with self._cond:
            if not self._busy and not self._waiting:
                self._busy = True
                return True
            self.waits += 1
            entry = (key, next(_tickets))
            bisect.insort(self._waiting, entry)
            while True:
                if not self._busy and self._waiting[0] is entry:
                    self._waiting.pop(0)
                    self._busy = True
                    return True
                remaining = until - time.monotonic()
                if remaining <= 0:
                    self._waiting.remove(entry)
                    self._cond.notify_all()  # the next in line may be free to go now
                    return False
                self._cond.wait(remaining)

    def release(self) -> None:
        with self._cond:
            self._busy = False
            if self._waiting:
                self._cond.notify_all()

    @property
    def busy(self) -> bool:
        return self._busy

    def waiting(self) -> int:
        return len(self._waiting)
