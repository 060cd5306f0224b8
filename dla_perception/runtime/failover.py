"""What the manager does when a core fails a request or holds it past its deadline: failover.

A request is retried at most once, on another core of its model (after an engine error or a missed
deadline); whichever answer comes first wins. A request taken out unrun past its deadline with no retry
left is a stale drop; a core whose run outlasted its deadline is stuck and its queue moves elsewhere. The
methods run on worker and watchdog threads, without any worker lock held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from dla_perception.runtime import reporting
from dla_perception.runtime.dispatch import ModelEntry, choose_core
from dla_perception.runtime.errors import DeadlineExceeded, EngineError, EngineManagerClosed, EngineStuck
from dla_perception.runtime.requests import Request
from dla_perception.runtime.worker import Due, Worker

log = logging.getLogger("dla_perception.runtime.manager")


class Failover:
    """Mixed into EngineManager: the retry, deadline and stuck-core handling its workers call."""

    _models: dict[str, ModelEntry]
    _failover_lock: threading.Lock
    _closed: bool

    # and from the manager: _dispatch(entry, request, worker), _health_changed(worker, kind, detail)

    def _retry_target(self, request: Request) -> Worker | None:
        entry = self._models.get(request.model)
        if entry is None or request.retried or self._closed:
            return None
        return choose_core(entry.workers, entry.spec.policy, entry.counter, request.tried, time.monotonic())

    def _claim(self, worker: Worker, request: Request) -> tuple[bool, Worker | None]:
        """Take `request` from `worker`, once (an engine error and its deadline can race): (claimed, the
        core to retry it on, already given the retry's deadline)."""
        with self._failover_lock:
            if request.done or worker.core in request.tried:
                return False, None
            request.tried.append(worker.core)
            target = self._retry_target(request)
            if target is not None:
                request.retried = True
                request.deadline = time.monotonic() + target.deadline_s
            return True, target

    def _no_core_error(self, entry: ModelEntry, tried: Sequence[str]) -> EngineError:
        stuck = [worker for worker in entry.workers if worker.stuck]
        if len(stuck) == len(entry.workers):
            return EngineStuck(f"model '{entry.spec.name}': every core is stuck: " + ", ".join(
                f"{w.core} since {reporting.wall_iso(w.stuck_since_wall)} "
                f"(deadline {w.deadline_s * 1e3:.0f} ms)" for w in stuck))
        return EngineError(f"model '{entry.spec.name}': no core left to run it (tried {list(tried)}, "
                           f"stuck {[w.core for w in stuck]})")

    # -- what the workers and the watchdog report (called without worker locks) ----------------------

    def _request_failed(self, worker: Worker, request: Request, error: Exception) -> None:
        """An engine raised: retry once on another core, else fail the future."""
        claimed, target = self._claim(worker, request)
        if not claimed:  # another core has it since its deadline
            return
        if target is not None:
            log.warning("%s failed (%s); retrying on %s", worker.name, error, target.core)
            self._dispatch(self._models[request.model], request, target)
            return
        request.stream_state.record_failed()
        failure = error if isinstance(error, EngineError) else EngineError(
            f"'{request.model}' failed on {worker.core}: {error}")
        if failure is not error:
            failure.__cause__ = error
        request.fail(failure)

    def _deadline_passed(self, worker: Worker, request: Request, running: bool) -> None:
        """`worker` held `request` (queued, or running when `running`) past its deadline."""
        worker.stats.record_deadline_miss()
        claimed, target = self._claim(worker, request)
        if not claimed:
            return
        age_ms = (time.monotonic() - request.submitted) * 1e3
        where = "running" if running else "waiting"
        if target is not None:
            log.warning("%s: '%s' request still %s at its deadline (%.0f ms after submission); "
                        "retrying on %s", worker.name, request.model, where, age_ms, target.core)
            self._dispatch(self._models[request.model], request, target)
            return
        if not running:
            worker.stats.record_stale()
            request.stream_state.record_drop("stale")
        else:
            request.stream_state.record_failed()
        why = "it was retried once already" if request.retried else "no other core can take it"
        verb = "still running on" if running else "dropped unrun from the queue of"
        request.fail(DeadlineExceeded(f"{request.label} {verb} {worker.core} at its deadline, "
                                      f"{age_ms:.0f} ms after submission; {why}"))

    def _on_due(self, worker: Worker, due: Due) -> None:
        if due.stuck:
            detail = (f"no answer within its {worker.deadline_s * 1e3:.0f} ms deadline since "
                      f"{reporting.wall_iso(worker.stuck_since_wall)}: out of rotation until a probe answers")
            log.error("%s stuck: %s", worker.name, detail)
            self._health_changed(worker, "stuck", detail)
            entry = self._models.get(worker.model)
            for request in due.displaced:  # never ran here: moved, not retried
                if entry is not None and not self._closed:
                    other = choose_core(entry.workers, entry.spec.policy, entry.counter,
                                        [*request.tried, worker.core], time.monotonic())
                    self._dispatch(entry, request, other)
                else:
                    request.fail(EngineManagerClosed(f"engine manager closed; '{request.model}' not run"))
        if due.overdue is not None:
            self._deadline_passed(worker, due.overdue, running=True)
        for request in due.expired:
            self._deadline_passed(worker, request, running=False)
