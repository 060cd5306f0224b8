"""The engine manager: owns a process's engines, one worker thread per (model, core), and dispatches.

Placement (runtime/placement.py): each requested core resolves along a fallback chain to a core this
machine has and can build on; requested cores landing on one core share one engine and worker.
Scheduling (runtime/dispatch.py): the model's policy picks the core, queues are bounded and latest-wins.
Workers (runtime/worker.py) run the engines and keep each core's health; the watchdog
(runtime/watchdog.py) acts on deadlines; reporting (runtime/reporting.py) turns all of it into statistics.

Every request carries a deadline. One not answered by then is answered from another core where one is
available (whichever answer comes first wins; a later one is discarded), else fails with
DeadlineExceeded; a request is retried at most once (after an error or a missed deadline), so a caller
waits at most its deadline plus the retry's. A core whose run outlasts the deadline is stuck until a
probe answers. Every future resolves: outputs, EngineError (DeadlineExceeded, EngineStuck,
RequestDropped) or EngineManagerClosed, also when close() gives up on a hung engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from dla_perception.runtime import reporting
from dla_perception.runtime.backends import create_engine
from dla_perception.runtime.config import EnginesConfig, ModelSpec, load_engines_config, validate_model_spec
from dla_perception.runtime.dispatch import ModelEntry, choose_core
from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import (
    DeadlineExceeded,
    EngineError,
    EngineManagerClosed,
    EngineStuck,
    InputValidationError,
    RequestDropped,
)
from dla_perception.runtime.placement import EngineFactory, fallback_chain, place
from dla_perception.runtime.requests import Answer, Request, validate_inputs
from dla_perception.runtime.watchdog import Watchdog
from dla_perception.runtime.worker import Due, Worker

__all__ = ["EngineFactory", "EngineManager", "HealthEvent", "fallback_chain", "validate_inputs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthEvent:
    """A core changed state for a model: `kind` is "stuck" or "restored"."""

    kind: str
    model: str
    core: str
    detail: str
    monotonic: float


class EngineManager:
    """Thread-safe owner of a process's engines; use as a context manager or call close().

    `engine_factory(spec, core)` builds an engine or raises EngineError (default: onnxruntime/TensorRT
    via runtime.backends.create_engine); it exists so other backends can be plugged in.
    """

    def __init__(
        self,
        config: EnginesConfig,
        available_cores: Sequence[str] | None = None,
        *,
        engine_factory: EngineFactory | None = None,
        window_s: float = 10.0,
        error_threshold: int = 3,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        close_timeout_s: float = 10.0,
    ) -> None:
        if available_cores is None:
            from dla_perception.runtime.cores import discover

            available_cores = discover().cores
        self.config = config
        self.available_cores = tuple(available_cores)
        self.window_s = window_s
        self.error_threshold = max(1, error_threshold)
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.close_timeout_s = close_timeout_s
        self._factory = engine_factory or (lambda spec, core: create_engine(
            spec, core, cache_dir=config.cache_dir, plans_to_keep=config.plans_to_keep))
        self._lock = threading.RLock()
        self._failover_lock = threading.Lock()
        self._models: dict[str, ModelEntry] = {}
        self._listeners: list[Callable[[HealthEvent], None]] = []
        self._closed = False
        self._watchdog = Watchdog(lambda: reporting.workers_of(self._models), self._on_due)
        try:
            for spec in config.models.values():
                self.add_model(spec)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_file(cls, path: str | Path, available_cores: Sequence[str] | None = None,
                  **kwargs: Any) -> EngineManager:
        return cls(load_engines_config(path), available_cores, **kwargs)

    @classmethod
    def build_available(cls, config: EnginesConfig, available_cores: Sequence[str] | None = None,
                        **kwargs: Any) -> tuple[EngineManager, list[str]]:
        """A manager with every model of `config` that could be built, and one line per model that could not.

        A robot keeps perceiving with the models that work: a missing ONNX file or an engine that fails to
        build is reported (and shown in diagnostics by the caller), never fatal for the others.
        """
        manager = cls(replace(config, models={}), available_cores, **kwargs)
        problems: list[str] = []
        for spec in config.models.values():
            if not Path(spec.onnx).is_file():
                problems.append(f"model {spec.name}: ONNX file not found: {spec.onnx}")
                continue
            try:
                manager.add_model(spec)
            except Exception as exc:  # one model failing must not take the others down
                problems.append(f"model {spec.name}: {exc}")
        return manager, problems

    # -- models -------------------------------------------------------------------------------------

    def add_model(self, spec: ModelSpec) -> None:
        """Build engines for every requested core (with fallbacks) and start their workers."""
        validate_model_spec(spec)
        with self._lock:
            if self._closed:
                raise EngineManagerClosed("engine manager closed; cannot add models")
            if spec.name in self._models:
                raise ValueError(f"model '{spec.name}' is already registered")
            engines: dict[str, Engine] = {}
            failures: dict[str, str] = {}
            fallbacks = []
            for requested in spec.cores:
                used, reason = place(spec, requested, self.available_cores, self._factory, engines, failures)
                if used != requested:
                    fallbacks.append({"requested": requested, "used": used or "none", "reason": reason})
                    log.warning("model '%s': core %s -> %s (%s)", spec.name, requested, used or "none",
                                reason)
            if not engines:
                raise EngineError(f"model '{spec.name}': no core could run it: "
                                  + "; ".join(f"{core}: {why}" for core, why in failures.items()))
            reference_core, reference = next(iter(engines.items()))
            for core, engine in engines.items():
                if engine.input_specs() != reference.input_specs():
                    log.warning("model '%s': %s and %s report different inputs", spec.name,
                                reference_core, core)
            workers = [Worker(self, spec.name, core, engine, spec.queue_size,
                              self.config.deadline_ms(spec, core) / 1e3, self.window_s)
                       for core, engine in engines.items()]
            self._models[spec.name] = ModelEntry(spec, workers, fallbacks, reference.input_specs(),
                                                 reference.output_specs())

    def has_model(self, name: str) -> bool:
        return name in self._models

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def _entry(self, model: str) -> ModelEntry:
        entry = self._models.get(model)
        if entry is None:
            raise InputValidationError(f"unknown model '{model}' (registered: {sorted(self._models)})")
        return entry

    def input_specs(self, model: str) -> list[TensorSpec]:
        return list(self._entry(model).inputs)

    def output_specs(self, model: str) -> list[TensorSpec]:
        return list(self._entry(model).outputs)

    # -- requests -----------------------------------------------------------------------------------

    def submit(self, model: str, inputs: Mapping[str, np.ndarray], *, stream: str | None = None,
               deadline: float | None = None) -> Future:
        """Validate now (InputValidationError), run on a worker; the future's result is {output: array}.

        `deadline` (time.monotonic() seconds) is when the answer stops being useful, e.g. derived from
        the frame's capture time; default: now + the model's deadline on the chosen core. A request
        already past it is dropped unrun (DeadlineExceeded). `stream` names the camera and task the
        request belongs to (default: the model), kept with the request for scheduling and messages.
        """
        future = Future()
        self._submit(model, inputs, stream, deadline, future)
        return future

    def _submit(self, model: str, inputs: Mapping[str, np.ndarray], stream: str | None,
                deadline: float | None, future: Future | Answer) -> None:
        if self._closed:
            raise EngineManagerClosed("engine manager closed")
        entry = self._entry(model)
        validated = validate_inputs(model, entry.inputs, inputs)
        now = time.monotonic()
        worker = choose_core(entry.workers, entry.spec.policy, entry.counter, (), now)
        due = deadline if deadline is not None else now + (worker.deadline_s if worker else 0.0)
        request = Request(model, validated, stream or model, due, now, future=future)
        if worker is None:
            request.fail(self._no_core_error(entry, ()))
        elif request.deadline <= now:
            worker.stats.record_stale()
            request.fail(DeadlineExceeded(f"{request.label} dropped unrun: already past its deadline "
                                          f"({(now - request.deadline) * 1e3:.0f} ms ago) when submitted"))
        else:
            self._dispatch(entry, request, worker)

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], timeout: float | None = None, *,
              stream: str | None = None, deadline: float | None = None) -> dict[str, np.ndarray]:
        """submit() and wait. It returns or raises by the deadline plus one retry's deadline at the latest;
        `timeout` (s) may cut that short (TimeoutError; a request still queued is then cancelled)."""
        answer = Answer()
        self._submit(model, inputs, stream, deadline, answer)
        try:
            return answer.result(timeout)
        except FutureTimeout:  # the builtin TimeoutError from Python 3.11
            answer.cancel()
            raise

    def _dispatch(self, entry: ModelEntry, request: Request, worker: Worker | None) -> None:
        """Queue on `worker`, or on the next core the policy gives when it was closed or became stuck."""
        exclude = list(request.tried)
        while worker is not None:
            accepted, victim = worker.put(request)
            if victim is not None:
                worker.stats.record_drop()
                superseded = "a newer request was already waiting" if victim is request else \
                    "a newer request took its place"
                victim.fail(RequestDropped(f"{victim.label} dropped from the full queue of "
                                           f"{worker.core} (queue_size={worker.queue_size}): {superseded}"))
            if accepted:
                if victim is not request:
                    self._watchdog.poke(request.deadline)
                return
            if worker.closed:
                request.fail(EngineManagerClosed(f"engine manager closed; '{request.model}' not run"))
                return
            exclude.append(worker.core)
            worker = choose_core(entry.workers, entry.spec.policy, entry.counter, exclude, time.monotonic())
        request.fail(self._no_core_error(entry, request.tried))

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

    def _health_changed(self, worker: Worker, kind: str, detail: str) -> None:
        event = HealthEvent(kind, worker.model, worker.core, detail, time.monotonic())
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("health listener failed on %s", event)

    def add_health_listener(self, listener: Callable[[HealthEvent], None]) -> None:
        """Call `listener(event)` when a core becomes stuck or is restored (from a runtime thread)."""
        self._listeners.append(listener)

    # -- reporting ----------------------------------------------------------------------------------

    def statistics(self) -> dict[str, Any]:
        """Per core and per engine (`model@core`): see docs/runtime.md for the keys."""
        return reporting.statistics(self._models)

    def placements(self) -> list[dict[str, Any]]:
        return reporting.placements(self._models)

    def health(self) -> dict[str, dict[str, Any]]:
        """Per model: state ok | degraded | unavailable, and which cores serve, are stuck or back off."""
        return reporting.health(self._models)

    def describe(self) -> dict[str, Any]:
        """JSON-able: available cores, placements, each engine's own description (TensorRT engines
        include their layer placement report) and each model's health."""
        return {"available_cores": list(self.available_cores), "cache_dir": str(self.config.cache_dir),
                "latency_budget_ms": dict(self.config.latency_budget_ms), **reporting.describe(self._models),
                "health": self.health()}

    # -- lifetime -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests, fail queued ones, let running ones finish until `timeout` (default
        close_timeout_s) in all, then free the engines. Returns within the timeout: an engine still running
        then is abandoned (its thread and engine are left alone) and its request fails with
        EngineManagerClosed. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = reporting.workers_of(self._models)
        limit = self.close_timeout_s if timeout is None else timeout
        until = time.monotonic() + limit
        for worker in workers:
            for request in worker.begin_close():
                request.fail(EngineManagerClosed(f"engine manager closed before '{request.model}' ran"))
        self._watchdog.stop(max(0.0, until - time.monotonic()))
        for worker in workers:
            running = worker.finish_close(until)
            if running is not None:
                running.fail(EngineManagerClosed(f"engine manager closed: {worker.name} did not answer "
                                                 f"within the {limit:g} s close timeout"))

    def __enter__(self) -> EngineManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
