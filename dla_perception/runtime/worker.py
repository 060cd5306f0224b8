"""One engine on one core: its thread, its bounded queue, and the core's health for this model.

Health has two separate states. A core that *fails* `error_threshold` requests in a row backs off (out of
rotation for a doubling delay, then simply tried again). A core whose run goes past the deadline is
*stuck*: out of rotation, its queue handed to other cores, and back only after a probe (zeros shaped like
its last inputs, run on its own thread once the hung run returned) answers within the deadline.

A hung `Engine.run` cannot be interrupted from Python. The worker therefore never waits for it: the
watchdog answers its requests elsewhere, `close()` abandons the thread (a daemon) without freeing the
engine under it, and the core stays stuck until the run returns. No replacement engine is built on the
same core: a wedged DLA or driver would take it down too (see docs/runtime.md). An engine that can stop
waiting (cuDLA polls its task's completion) gets the moment the watchdog would call the core stuck
(`Engine.run_until`); when it gives up with TaskTimeout the core is declared stuck on the spot, the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dla_perception.runtime.dispatch import StreamQueue
from dla_perception.runtime.engine import Engine
from dla_perception.runtime.errors import TaskTimeout
from dla_perception.runtime.requests import Request
from dla_perception.runtime.statistics import EngineStatistics
from dla_perception.runtime.streams_gate import CoreGate

log = logging.getLogger(__name__)


class WorkerOwner(Protocol):
    """What a worker asks of its manager; called without any worker lock held."""

    error_threshold: int
    initial_backoff_s: float
    max_backoff_s: float

    def _request_failed(self, worker: Worker, request: Request, error: Exception) -> None: ...

    def _deadline_passed(self, worker: Worker, request: Request, running: bool) -> None: ...

    def _health_changed(self, worker: Worker, kind: str, detail: str) -> None: ...

    def _on_due(self, worker: Worker, due: Due) -> None: ...


@dataclass
class Due:
    """What the watchdog found on one worker (see Worker.due)."""

    expired: list[Request] = field(default_factory=list)  # waited past their deadline
    overdue: Request | None = None  # running past its deadline
    displaced: list[Request] = field(default_factory=list)  # queued on a core that just became stuck
    stuck: bool = False  # the worker became stuck now
    next_check: float = float("inf")


class Worker:
    def __init__(self, owner: WorkerOwner, model: str, core: str, engine: Engine, queue_size: int,
                 deadline_s: float, window_s: float, gate: CoreGate | None = None) -> None:
        self.owner = owner
        self.model = model
        self.core = core
        self.engine = engine
        self.queue_size = queue_size
        self.deadline_s = deadline_s
        self.stats = EngineStatistics(window_s)
        self.gate = gate  # shared by every model's worker on a one-task-at-a-time core
        if gate is not None:
            gate.members.append(self)
        self._queue = StreamQueue()
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._running: Request | None = None
        self._run_started = 0.0
        self._overdue_reported: Request | None = None
        self._last_inputs: dict[str, np.ndarray] | None = None
        self.stuck_since: float | None = None  # time.monotonic() when the stuck run began
        self.stuck_since_wall: float | None = None  # the same moment on the wall clock (time.time())
        self.times_stuck = 0
        self._next_probe = 0.0
        self._probe_backoff_s = owner.initial_backoff_s
        self.consecutive_errors = 0
        self.out_until = 0.0
        self.backoff_s = owner.initial_backoff_s
        self._thread = threading.Thread(target=self._loop, name=f"engine {model}@{core}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return f"{self.model}@{self.core}"

    @property
    def stuck(self) -> bool:
        return self.stuck_since is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def load(self, key: tuple[int, int, int] | None = None) -> int:
        """Runs ahead of a new request here: on a gated core every model's (least_loaded compares cores).
        With the new request's schedule `key`: only the running one and those queued with a better key."""
        if self.gate is not None:
            return self.gate.load(key)
        return self.ahead(key) + (self._running is not None)

    def ahead(self, key: tuple[int, int, int] | None) -> int:
        """Queued requests that would run before one with `key` (all of them when None)."""
        with self._cond:
            return len(self._queue) if key is None else self._queue.ahead_of(key, time.monotonic())

    def queue_depth(self) -> int:
        return len(self._queue)

    def in_rotation(self, now: float) -> bool:
        return not self.stuck and now >= self.out_until

    # -- requests in --------------------------------------------------------------------------------
    def put(self, request: Request) -> tuple[bool, Request | None]:
        """(accepted, the request dropped for it). Refused when closed or stuck: the caller goes elsewhere."""
        with self._cond:
            if self._closed or self.stuck_since is not None:
                return False, None
            victim = self._queue.admit(request, self.queue_size)
            self._cond.notify()
        if self.gate is not None:  # after our lock (lock order): the core may be free for this request
            self.gate.poke()
        return True, victim

    # -- the thread ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            expired: list[Request] = []
            gated = False
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self.stuck_since is not None:
                        if now >= self._next_probe:
                            request = self._probe_request(now)
                            break
                        self._cond.wait(self._next_probe - now)
                        continue
                    if self.gate is not None:  # wait for the core first, take the request once granted
                        request, expired = None, self._queue.take_expired(now)
                        gated = len(self._queue) > 0
                        if gated or expired:
                            break
                    else:
                        request, expired = self._queue.take_next(now)
                        if request is not None or expired:
                            break
                    self._cond.wait()
                if request is not None:
                    self._running, self._run_started = request, now
            for late in expired:  # outside the lock: the manager may queue them on another worker
                self.owner._deadline_passed(self, late, running=False)
            if gated:
                self._gated_turn()
            elif request is not None:
                self._run(request)

    def _gated_turn(self) -> None:
        """Wait for the core with this worker's best queued request, then run the best one at that moment."""
        with self._cond:
            until = min(self._queue.next_deadline(), time.monotonic() + self.deadline_s)
        if not self.gate.acquire(self._peek_key, until):
            return  # timed out (the loop takes the late requests out) or nothing left to run
        try:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                request, expired = self._queue.take_next(now)
                if request is not None:  # visible to the watchdog only once it really runs
                    self._running, self._run_started = request, now
            for late in expired:
                self.owner._deadline_passed(self, late, running=False)
            if request is not None:
                self._run(request)
        finally:
            self.gate.release()

    def _peek_key(self, now: float) -> tuple[int, int, int] | None:
        """The gate's question (asked under the gate's lock): the key of what this worker would run now."""
        with self._cond:
            if self._closed or self.stuck_since is not None:
                return None
            return self._queue.peek_key(now)

    def _run(self, request: Request) -> None:
        if not request.probe and not request.start():
            with self._cond:
                self._running = None
            return
        started = time.monotonic()
        state = request.stream_state
        if not request.probe:
            self._last_inputs = request.inputs  # shapes for a probe, should this run hang
            if state is not None:
                state.started(request.model, started)
        error: Exception | None = None
        # An engine that can stop waiting (cuDLA) waits no longer than the watchdog would before calling
        # the core stuck, nor gives up on an answer that is still useful.
        until = max(request.deadline, started + self.deadline_s)
        try:
            outputs = self.engine.run_until(request.inputs, until)
        except Exception as exc:
            error = exc
        finished = time.monotonic()
        displaced: list[Request] | None = None
        with self._cond:
            self._running = None
            self._overdue_reported = None
            if isinstance(error, TaskTimeout) and self.stuck_since is None:
                displaced = self._become_stuck(started, finished)  # its task may still run on the core
        if displaced is not None:
            self.owner._on_due(self, Due(displaced=displaced, stuck=True))
        if request.probe:
            self._probe_finished(finished - started, error)
            return
        self.stats.record(started, finished, ok=error is None)
        if error is not None:
            self._note_failure()
            if not request.done:
                self.owner._request_failed(self, request, error)
        else:
            self._note_success()
            if not request.answer(outputs):
                self.stats.record_late()
            elif state is not None:
                state.record_delivered(request.model, self.core, request.submitted, finished)

    # -- health -------------------------------------------------------------------------------------
    def _note_success(self) -> None:
        if self.consecutive_errors:
            self.consecutive_errors = 0
            self.backoff_s = self.owner.initial_backoff_s

    def _note_failure(self) -> None:
        self.consecutive_errors += 1
        if self.consecutive_errors >= self.owner.error_threshold:
            self.out_until = time.monotonic() + self.backoff_s
            log.warning("%s failed %d times in a row: out of rotation for %.1f s", self.name,
                        self.consecutive_errors, self.backoff_s)
            self.backoff_s = min(self.backoff_s * 2, self.owner.max_backoff_s)

    def due(self, now: float) -> Due:
        """The watchdog's look at this worker: take out what is past its deadline, declare the core stuck
        when its run has lasted longer than the deadline, and say when to look again."""
        due = Due()
        with self._cond:
            if self._closed:
                return due
            due.expired = self._queue.take_expired(now)
            running = self._running
            if running is not None and not running.probe and not running.done:
                if running is not self._overdue_reported:
                    if now >= running.deadline:
                        due.overdue = running
                        self._overdue_reported = running
                    else:
                        due.next_check = running.deadline
            if running is not None and self.stuck_since is None:
                stuck_at = self._run_started + self.deadline_s
                if now >= stuck_at:
                    due.stuck = True
                    due.displaced = self._become_stuck(self._run_started, now)
                else:
                    due.next_check = min(due.next_check, stuck_at)
            due.next_check = min(due.next_check, self._queue.next_deadline())
        return due

    def _become_stuck(self, run_started: float, now: float) -> list[Request]:
        """Out of rotation since `run_started`; returns the queue, for other cores. Caller holds the lock."""
        self.stuck_since = run_started
        self.stuck_since_wall = time.time() - (now - run_started)
        self.times_stuck += 1
        self._probe_backoff_s = self.owner.initial_backoff_s
        self._next_probe = 0.0  # as soon as the hung run returns
        return self._queue.drain()

    def _probe_request(self, now: float) -> Request:
        inputs = {name: np.zeros_like(array) for name, array in (self._last_inputs or {}).items()}
        return Request(self.model, inputs, stream="probe", deadline=now + self.deadline_s, submitted=now,
                       probe=True)

    def _probe_finished(self, took_s: float, error: Exception | None) -> None:
        if error is None and took_s <= self.deadline_s:
            with self._cond:
                stuck_for = time.monotonic() - (self.stuck_since or time.monotonic())
                self.stuck_since = self.stuck_since_wall = None
            detail = (f"a probe answered in {took_s * 1e3:.1f} ms; back in rotation after {stuck_for:.2f} s "
                      "stuck")
            log.info("%s: %s", self.name, detail)
            self.owner._health_changed(self, "restored", detail)
            return
        why = f"failed: {error}" if error is not None else f"took {took_s * 1e3:.0f} ms"
        with self._cond:
            self._next_probe = time.monotonic() + self._probe_backoff_s
            wait_s = self._probe_backoff_s
            self._probe_backoff_s = min(self._probe_backoff_s * 2, self.owner.max_backoff_s)
        log.warning("%s still stuck: the probe %s (deadline %.0f ms); next probe in %.1f s", self.name, why,
                    self.deadline_s * 1e3, wait_s)

    # -- lifetime -----------------------------------------------------------------------------------
    def begin_close(self) -> list[Request]:
        """Refuse new requests and stop the thread after its current run; returns what was waiting."""
        with self._cond:
            self._closed = True
            pending = self._queue.drain()
            self._cond.notify_all()
        return pending

    def finish_close(self, until: float) -> Request | None:
        """Wait for the thread until `until` (monotonic), then free the engine; if the thread is still
        inside Engine.run, abandon it (and the engine) and return its request for the caller to fail."""
        self._thread.join(max(0.0, until - time.monotonic()))
        if self._thread.is_alive():
            with self._cond:
                running = self._running
            log.warning("%s still running at close: abandoning its thread and engine", self.name)
            return running if running is not None and not running.probe else None
        try:
            self.engine.close()
        except Exception as exc:
            log.warning("closing %s: %s", self.name, exc)
        return None

