"""The engine manager: owns a process's engines, one worker thread per (model, core), and dispatches.

Placement: each requested core of a model is resolved along a fallback chain (the rest of the model's
list, then gpu, then cpu) to a core this machine has and can build an engine on. Several requested
cores that resolve to the same core share ONE engine and worker (round_robin over [dla0, dla1] on a
machine without DLA gives one cpu worker, not two competing ones). Every fallback is logged and listed
by `placements()`.

Dispatch: `pinned` sends everything to the first active core (the others are warm standbys for
failover), `round_robin` alternates, `least_loaded` picks the core with the fewest queued + running
requests. A request that fails is retried once on another core; a core failing `error_threshold` times
in a row leaves rotation for a back-off (doubling up to `max_backoff_s`) and is then tried again.

Queues are bounded (`queue_size` waiting requests per worker) and latest-wins: a full queue drops its
oldest waiting request (its future fails with RequestDropped), because a robot wants the newest frame
processed, not a growing backlog. Every future resolves: result, engine error, drop or closed manager.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dla_perception.runtime.backends import create_engine
from dla_perception.runtime.config import EnginesConfig, ModelSpec, load_engines_config, validate_model_spec
from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import (
    EngineError,
    EngineManagerClosed,
    InputValidationError,
    RequestDropped,
)
from dla_perception.runtime.statistics import EngineStatistics, summarize

log = logging.getLogger(__name__)

EngineFactory = Callable[[ModelSpec, str], Engine]


def fallback_chain(requested: str, preferred: Sequence[str]) -> list[str]:
    """Cores to try for `requested`: itself, the rest of the model's list (wrapping), then gpu, then cpu."""
    index = list(preferred).index(requested) if requested in preferred else 0
    ordered = [requested, *preferred[index + 1:], *preferred[:index], "gpu", "cpu"]
    return list(dict.fromkeys(ordered))


def validate_inputs(model: str, specs: Sequence[TensorSpec], inputs: Any) -> dict[str, np.ndarray]:
    """Check names, dtypes and shapes against the model; return C-contiguous arrays (copied if needed).

    dtypes must match exactly (no silent casts: a float64 image fed to a float32 network is usually a
    pre-processing bug). Non-contiguous views are accepted and copied, as every backend needs dense memory.
    """
    if not isinstance(inputs, Mapping):
        raise InputValidationError(f"model '{model}': inputs must be a dict of name -> numpy array, "
                                   f"got {type(inputs).__name__}")
    expected = [spec.name for spec in specs]
    missing = [name for name in expected if name not in inputs]
    unexpected = sorted(str(name) for name in inputs if name not in expected)
    if missing or unexpected:
        raise InputValidationError(f"model '{model}': input names do not match: missing {missing}, "
                                   f"unexpected {unexpected} (expected {expected})")
    validated = {}
    for spec in specs:
        array = inputs[spec.name]
        if not isinstance(array, np.ndarray):
            raise InputValidationError(f"model '{model}': input '{spec.name}' must be a numpy array, "
                                       f"got {type(array).__name__}")
        if array.dtype != spec.dtype:
            raise InputValidationError(
                f"model '{model}': input '{spec.name}' has dtype {array.dtype}, expected {spec.dtype} "
                f"(convert with .astype(np.{spec.dtype.name}))")
        shape_ok = array.ndim == len(spec.shape) and all(
            want < 0 or want == got for want, got in zip(spec.shape, array.shape, strict=True))
        if not shape_ok:
            expected_shape = tuple("?" if dim < 0 else dim for dim in spec.shape)
            raise InputValidationError(f"model '{model}': input '{spec.name}' has shape {array.shape}, "
                                       f"expected {expected_shape} ('?' = any size)")
        validated[spec.name] = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    return validated


@dataclass(eq=False)
class _Request:
    model: str
    inputs: dict[str, np.ndarray]
    future: Future = field(default_factory=Future)
    tried: list[str] = field(default_factory=list)
    running: bool = False


class _Worker:
    """One engine, one thread, one bounded latest-wins queue, and the core's health for this model."""

    def __init__(self, manager: EngineManager, model: str, core: str, engine: Engine, queue_size: int,
                 window_s: float) -> None:
        self.manager = manager
        self.model = model
        self.core = core
        self.engine = engine
        self.queue_size = queue_size
        self.stats = EngineStatistics(window_s)
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.consecutive_errors = 0
        self.out_until = 0.0
        self.backoff_s = manager.initial_backoff_s
        self._thread = threading.Thread(target=self._loop, name=f"engine {model}@{self.core}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return f"{self.model}@{self.core}"

    def load(self) -> int:
        return len(self._queue) + int(self._busy)

    def queue_depth(self) -> int:
        return len(self._queue)

    def in_rotation(self, now: float) -> bool:
        return now >= self.out_until

    def put(self, request: _Request) -> None:
        dropped = None
        with self._cond:
            if self._closed:
                closed = True
            else:
                closed = False
                if len(self._queue) >= self.queue_size:
                    dropped = self._queue.popleft()
                self._queue.append(request)
                self._cond.notify()
        if closed:
            _fail(request, EngineManagerClosed(f"engine manager closed; '{request.model}' not run"))
        if dropped is not None:
            self.stats.record_drop()
            _fail(dropped, RequestDropped(
                f"'{self.model}' request dropped from the full queue of {self.core} "
                f"(queue_size={self.queue_size}); a newer request took its place"))

    def run_inline(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray] | Future | None:
        """Run in the caller's thread when the engine is idle and nothing waits.

        Returns the outputs; or, when the engine failed, the future of the failover retry; or None when
        the engine is busy (the caller queues instead). A synchronous caller so skips two thread
        hand-offs and the future machinery; the engine still runs one request at a time because `_busy`
        is shared with the worker thread.
        """
        with self._cond:
            if self._closed or self._busy or self._queue:
                return None
            self._busy = True
        try:
            started = time.monotonic()
            try:
                outputs = self.engine.run(inputs)
            except Exception as exc:
                self.stats.record(started, time.monotonic(), ok=False)
                self._note_failure()
                request = _Request(self.model, inputs)
                request.future.set_running_or_notify_cancel()
                request.running = True
                self.manager._on_failure(self, request, exc)
                return request.future
            self.stats.record(started, time.monotonic(), ok=True)
            self._note_success()
            return outputs
        finally:
            with self._cond:
                self._busy = False
                if self._queue or self._closed:  # wake the worker only when it has something to do
                    self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while (not self._queue or self._busy) and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                request = self._queue.popleft()
                self._busy = True
            try:
                self._run(request)
            finally:
                with self._cond:
                    self._busy = False
                    if self._closed:
                        self._cond.notify_all()

    def _run(self, request: _Request) -> None:
        if not request.running:
            if not request.future.set_running_or_notify_cancel():
                return  # cancelled by the caller while queued
            request.running = True
        started = time.monotonic()
        try:
            outputs = self.engine.run(request.inputs)
        except Exception as exc:
            self.stats.record(started, time.monotonic(), ok=False)
            self._note_failure()
            self.manager._on_failure(self, request, exc)
            return
        self.stats.record(started, time.monotonic(), ok=True)
        self._note_success()
        request.future.set_result(outputs)

    def _note_success(self) -> None:
        if self.consecutive_errors:
            self.consecutive_errors = 0
            self.backoff_s = self.manager.initial_backoff_s

    def _note_failure(self) -> None:
        self.consecutive_errors += 1
        if self.consecutive_errors >= self.manager.error_threshold:
            self.out_until = time.monotonic() + self.backoff_s
            log.warning("%s failed %d times in a row: out of rotation for %.1f s", self.name,
                        self.consecutive_errors, self.backoff_s)
            self.backoff_s = min(self.backoff_s * 2, self.manager.max_backoff_s)

    def close(self, timeout: float) -> None:
        """Stop accepting, fail what waits, let the running request finish, then free the engine."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for request in pending:
            _fail(request, EngineManagerClosed(f"engine manager closed before '{request.model}' ran"))
        self._thread.join(timeout)
        with self._cond:  # a caller's inline run may still be going
            self._cond.wait_for(lambda: not self._busy, timeout)
            still_running = self._busy
        if self._thread.is_alive() or still_running:
            log.warning("%s still running after %.1f s at close", self.name, timeout)
            return
        try:
            self.engine.close()
        except Exception as exc:
            log.warning("closing %s: %s", self.name, exc)


def _fail(request: _Request, error: BaseException) -> None:
    if not request.future.done():
        if not request.running and not request.future.set_running_or_notify_cancel():
            return
        request.running = True
        request.future.set_exception(error)


@dataclass
class _ModelEntry:
    spec: ModelSpec
    workers: list[_Worker]
    fallbacks: list[dict[str, str]]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    counter: itertools.count = field(default_factory=itertools.count)


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
        self._models: dict[str, _ModelEntry] = {}
        self._closed = False
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
                used, reason = self._place(spec, requested, engines, failures)
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
            workers = [_Worker(self, spec.name, core, engine, spec.queue_size, self.window_s)
                       for core, engine in engines.items()]
            self._models[spec.name] = _ModelEntry(spec, workers, fallbacks, reference.input_specs(),
                                                  reference.output_specs())

    def _place(self, spec: ModelSpec, requested: str, engines: dict[str, Engine],
               failures: dict[str, str]) -> tuple[str | None, str]:
        reasons = []
        for core in fallback_chain(requested, spec.cores):
            if core in engines:
                return core, "; ".join(reasons) or f"shares the {core} engine"
            if core not in self.available_cores:
                reasons.append(f"{core} not present on this machine")
                continue
            if core in failures:
                reasons.append(f"{core} failed: {failures[core]}")
                continue
            try:
                engines[core] = self._factory(spec, core)
            except Exception as exc:  # a backend's failure must not stop the chain
                failures[core] = str(exc)
                reasons.append(f"{core} failed: {exc}")
                continue
            return core, "; ".join(reasons)
        return None, "; ".join(reasons)

    def has_model(self, name: str) -> bool:
        return name in self._models

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def _entry(self, model: str) -> _ModelEntry:
        entry = self._models.get(model)
        if entry is None:
            raise InputValidationError(f"unknown model '{model}' (registered: {sorted(self._models)})")
        return entry

    def input_specs(self, model: str) -> list[TensorSpec]:
        return list(self._entry(model).inputs)

    def output_specs(self, model: str) -> list[TensorSpec]:
        return list(self._entry(model).outputs)

    # -- requests -----------------------------------------------------------------------------------

    def submit(self, model: str, inputs: Mapping[str, np.ndarray]) -> Future:
        """Validate now (InputValidationError), run later; the future's result is {output name: array}."""
        if self._closed:
            raise EngineManagerClosed("engine manager closed")
        entry = self._entry(model)
        request = _Request(model, validate_inputs(model, entry.inputs, inputs))
        worker = self._choose(entry, exclude=())
        worker.put(request)
        return request.future

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], timeout: float | None = None
              ) -> dict[str, np.ndarray]:
        """submit() and wait; raises TimeoutError after `timeout` s (a still-queued request is cancelled).

        Without a timeout, an idle engine runs the request in the calling thread (same engine, same
        statistics, no queue hand-off).
        """
        if timeout is not None:
            future = self.submit(model, inputs)
            try:
                return future.result(timeout)
            except FutureTimeout:  # an alias of the builtin TimeoutError only from Python 3.11
                future.cancel()
                raise
        if self._closed:
            raise EngineManagerClosed("engine manager closed")
        entry = self._entry(model)
        validated = validate_inputs(model, entry.inputs, inputs)
        worker = self._choose(entry, exclude=())
        outcome = worker.run_inline(validated)
        if outcome is None:
            request = _Request(model, validated)
            worker.put(request)
            return request.future.result()
        if isinstance(outcome, Future):
            return outcome.result()
        return outcome

    def _choose(self, entry: _ModelEntry, exclude: Sequence[str]) -> _Worker | None:
        candidates = [worker for worker in entry.workers if worker.core not in exclude]
        if not candidates:
            return None
        now = time.monotonic()
        pool = [worker for worker in candidates if worker.in_rotation(now)]
        if not pool:  # every core is backing off: the one that comes back first beats failing outright
            pool = [min(candidates, key=lambda worker: worker.out_until)]
        policy = entry.spec.policy
        if policy == "round_robin":
            return pool[next(entry.counter) % len(pool)]
        if policy == "least_loaded":
            return min(pool, key=lambda worker: worker.load())
        return pool[0]

    def _on_failure(self, worker: _Worker, request: _Request, error: Exception) -> None:
        """Called by a worker thread: retry once on another core, else fail the future."""
        request.tried.append(worker.core)
        entry = self._models.get(request.model)
        other = None
        if entry is not None and len(request.tried) < 2 and not self._closed:
            other = self._choose(entry, exclude=request.tried)
        if other is not None:
            log.warning("%s failed (%s); retrying on %s", worker.name, error, other.core)
            other.put(request)
            return
        if isinstance(error, EngineError):
            failure = error
        else:
            failure = EngineError(f"'{request.model}' failed on {worker.core}: {error}")
            failure.__cause__ = error
        request.future.set_exception(failure)

    # -- reporting ----------------------------------------------------------------------------------

    def _workers(self) -> list[_Worker]:
        return [worker for entry in list(self._models.values()) for worker in entry.workers]

    def statistics(self) -> dict[str, Any]:
        """Per core and per engine (`model@core`): see docs/runtime.md for the keys."""
        now = time.monotonic()
        workers = self._workers()
        cores: dict[str, dict[str, Any]] = {}
        for core in dict.fromkeys(worker.core for worker in workers):
            on_core = [(w.stats, w.queue_depth(), w.model) for w in workers if w.core == core]
            cores[core] = summarize(on_core, now)
        engines = {}
        for worker in workers:
            summary = summarize([(worker.stats, worker.queue_depth(), worker.model)], now)
            summary.update(model=worker.model, core=worker.core, precision=worker.engine.precision,
                           backend=worker.engine.backend, in_rotation=worker.in_rotation(now))
            engines[worker.name] = summary
        return {"cores": cores, "engines": engines}

    def placements(self) -> list[dict[str, Any]]:
        return [
            {
                "model": name,
                "requested": list(entry.spec.cores),
                "active": [worker.core for worker in entry.workers],
                "fallbacks": [dict(fallback) for fallback in entry.fallbacks],
                "policy": entry.spec.policy,
            }
            for name, entry in list(self._models.items())
        ]

    def describe(self) -> dict[str, Any]:
        """JSON-able: available cores, placements, and each engine's own description (TensorRT engines
        include their layer placement report)."""
        engines = {}
        for worker in self._workers():
            try:
                engines[worker.name] = worker.engine.describe()
            except Exception as exc:
                engines[worker.name] = {"model": worker.model, "core": worker.core, "error": str(exc)}
        return {
            "available_cores": list(self.available_cores),
            "cache_dir": str(self.config.cache_dir),
            "latency_budget_ms": dict(self.config.latency_budget_ms),
            "models": {
                placement["model"]: {
                    **placement,
                    "inputs": [spec.as_dict() for spec in self._models[placement["model"]].inputs],
                    "outputs": [spec.as_dict() for spec in self._models[placement["model"]].outputs],
                }
                for placement in self.placements()
            },
            "engines": engines,
        }

    # -- lifetime -----------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Refuse new requests, fail queued ones with EngineManagerClosed, finish running ones. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = self._workers()
        for worker in workers:
            worker.close(self.close_timeout_s)

    def __enter__(self) -> EngineManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
