"""The engine manager: owns a process's engines, one worker thread per (model, core), and dispatches.

Placement (runtime/placement.py): each requested core resolves along a fallback chain to a core this
machine has and can build on; requested cores landing on one core share one engine and worker.
Scheduling (runtime/dispatch.py): the model's policy picks the core; each core's queue is bounded and
latest-wins per stream (runtime/streams.py: camera and task, with a priority, a rate cap, a minimum rate and
a deadline), and the next request is the best stream's; one-task-at-a-time cores (DLA, cpuN) are handed
across models by the same order (runtime/streams_gate.py).
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
from dla_perception.runtime.cores import exclusive
from dla_perception.runtime.dispatch import ModelEntry, choose_core
from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import (
    DeadlineExceeded,
    EngineError,
    EngineManagerClosed,
    InputValidationError,
    RequestDropped,
)
from dla_perception.runtime.failover import Failover
from dla_perception.runtime.placement import EngineFactory, cpu_instances, fallback_chain, place
from dla_perception.runtime.requests import Answer, Request, validate_inputs
from dla_perception.runtime.streams import RateCapped, StreamRegistry, StreamSettings
from dla_perception.runtime.streams_gate import CoreGate
from dla_perception.runtime.watchdog import Watchdog
from dla_perception.runtime.worker import Worker

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


class EngineManager(Failover):
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
        self._factory = engine_factory or cpu_instances(lambda spec, core: create_engine(
            spec, core, cache_dir=config.cache_dir, plans_to_keep=config.plans_to_keep))
        self.streams = StreamRegistry(window_s)
        self._gates: dict[str, CoreGate] = {}
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
            gates = {core: self._gates.setdefault(core, CoreGate(core))
                     for core in engines if exclusive(core)}
            workers = [Worker(self, spec.name, core, engine, spec.queue_size,
                              self.config.deadline_ms(spec, core) / 1e3, self.window_s, gates.get(core))
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
        state = self.streams.get(stream or model, explicit=stream is not None)
        worker = choose_core(entry.workers, entry.spec.policy, entry.counter, (), now, stream=state)
        if deadline is None:
            stream_s = state.settings.deadline_ms and state.settings.deadline_ms / 1e3
            deadline = now + (stream_s or (worker.deadline_s if worker else 0.0))
        request = Request(model, validated, stream or model, deadline, now, future=future, stream_state=state)
        if not state.admit(model, now):
            request.fail(RateCapped(f"{request.label} dropped unrun: stream '{state.name}' is capped at "
                                    f"{state.settings.max_rate_hz:g} Hz"))
        elif worker is None:
            state.record_failed()
            request.fail(self._no_core_error(entry, ()))
        elif request.deadline <= now:
            state.record_drop("stale")
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
                victim.stream_state.record_drop("busy")
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

    # -- streams ------------------------------------------------------------------------------------

    def configure_stream(self, name: str, settings: StreamSettings | None = None) -> None:
        """Declare a stream (camera and task) with its priority and rates; see runtime/streams.py."""
        self.streams.configure(name, settings)

    def stream_statistics(self) -> dict[str, dict[str, Any]]:
        """Per named stream: rates, drops by cause, latency, cores used (docs/runtime.md, Streams)."""
        return self.streams.summaries()

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
