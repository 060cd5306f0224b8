"""One thread per manager that acts when a deadline passes: requests due, runs that went on too long.

It sleeps until the earliest deadline of any queued or running request (or the moment a running engine
would become stuck) and is woken only when a new request is due before that, so a steady stream of
requests costs one lock per submit and no extra thread switch. It never calls an engine and holds no
lock while the manager handles what it found, so a hung engine cannot stall it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dla_perception.runtime.worker import Due, Worker

log = logging.getLogger(__name__)


class Watchdog:
    def __init__(self, workers: Callable[[], list[Worker]], handle: Callable[[Worker, Due], None]) -> None:
        self._workers = workers
        self._handle = handle
        self._cond = threading.Condition(threading.Lock())
        self._wake_at = float("inf")  # inf while scanning too, so every poke then forces a rescan
        self._poked = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="engine watchdog", daemon=True)
        self._thread.start()

    def poke(self, when: float) -> None:
        """A request is due at `when` (monotonic): wake up earlier than planned if needed.

        The unlocked read is safe: a finite planned wake-up means a scan is still to come, and that scan
        starts after the caller queued its request, so it sees it (wake_at is inf during a scan).
        """
        if when >= self._wake_at:
            return
        with self._cond:
            if when < self._wake_at:
                self._poked = True
                self._cond.notify()

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._wake_at = float("inf")
                self._poked = False
                if self._stopped:
                    return
            wake_at = float("inf")
            now = time.monotonic()
            for worker in self._workers():
                due = worker.due(now)
                wake_at = min(wake_at, due.next_check)
                if due.expired or due.overdue is not None or due.stuck:
                    try:
                        self._handle(worker, due)
                    except Exception:  # the watchdog must survive anything the handling raises
                        log.exception("watchdog: handling %s failed", worker.name)
            with self._cond:
                if self._stopped:
                    return
                if self._poked or wake_at <= time.monotonic():
                    continue
                self._wake_at = wake_at
                self._cond.wait(None if wake_at == float("inf") else wake_at - time.monotonic())
