"""Every engine run of a replay, timed: the samples behind per-core percentiles and histograms.

The engine manager's own statistics cover a rolling window (made for live diagnostics); a replay needs all
of its runs. The manager's `engine_factory` hook builds each engine through `RecordingEngine`, which
delegates to the real engine and logs (core, model, latency) for every run into the RunLog that a
`LogTarget` points at: a manager kept for several replays (engine_cache) logs each replay's runs into that
replay's own RunLog. During a replay each run of a `cpu`-core engine is followed, on the same worker
thread, by one run of the machine reference workload (reference.py), logged with it: the gate divides the
engine's time by the reference's to take the machine's load out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dla_perception.replay.reference import ReferencePool, ReferenceWorkload
from dla_perception.runtime.backends import create_engine
from dla_perception.runtime.cores import base_core
from dla_perception.runtime.engine import Engine, TensorSpec


@dataclass(frozen=True)
class EngineRun:
    core: str
    model: str
    latency_ms: float
    ok: bool
    cpu_ms: float = 0.0  # process CPU time during the run: the work itself for a cpu-core engine
    reference_ms: float | None = None  # wall time of the reference run right after it (cpu core only)
    reference_cpu_ms: float | None = None  # ...and its process CPU time


class RunLog:
    """Thread-safe list of engine runs (engines run on the manager's worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[EngineRun] = []

    def add(self, run: EngineRun) -> None:
        with self._lock:
            self._runs.append(run)

    def runs(self) -> list[EngineRun]:
        with self._lock:
            return list(self._runs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def samples(self) -> dict[str, dict[str, list[float]]]:
        """model@core -> figure -> ms of every successful run: engine_runs.json, what pooling reads.

        Figures: latency_ms, cpu_ms, and for cpu-core engines reference_ms and reference_cpu_ms.
        """
        samples: dict[str, dict[str, list[float]]] = {}
        for run in self.runs():
            if not run.ok:
                continue
            figures = samples.setdefault(f"{run.model}@{run.core}", {"latency_ms": [], "cpu_ms": []})
            figures["latency_ms"].append(round(run.latency_ms, 4))
            figures["cpu_ms"].append(round(run.cpu_ms, 4))
            if run.reference_ms is not None and run.reference_cpu_ms is not None:
                figures.setdefault("reference_ms", []).append(round(run.reference_ms, 4))
                figures.setdefault("reference_cpu_ms", []).append(round(run.reference_cpu_ms, 4))
        return dict(sorted(samples.items()))

    def by_core(self) -> dict[str, list[EngineRun]]:
        cores: dict[str, list[EngineRun]] = {}
        for run in self.runs():
            cores.setdefault(run.core, []).append(run)
        return dict(sorted(cores.items()))


class LogTarget:
    """Which RunLog the recording engines of one manager write to (None: runs outside any replay)."""

    def __init__(self, log: RunLog | None = None) -> None:
        self.log = log


class RecordingEngine(Engine):
    """An engine that times each run of the engine it wraps and reports it to its target's RunLog."""

    def __init__(self, inner: Engine, target: LogTarget, reference: ReferenceWorkload | None = None) -> None:
        self.inner = inner
        self.target = target
        self.reference = reference
        self.model, self.core = inner.model, inner.core
        self.precision, self.backend = inner.precision, inner.backend

    def input_specs(self) -> list[TensorSpec]:
        return self.inner.input_specs()

    def output_specs(self) -> list[TensorSpec]:
        return self.inner.output_specs()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started, cpu_started = time.perf_counter(), time.process_time()
        ok = False
        try:
            outputs = self.inner.run(inputs)
            ok = True
            return outputs
        finally:
            latency_ms = (time.perf_counter() - started) * 1e3
            cpu_ms = (time.process_time() - cpu_started) * 1e3
            log = self.target.log
            if log is not None:
                # Only inside a replay, and right away: the reference meets the contention the run met.
                reference_ms, reference_cpu_ms = (self.reference.time() if ok and self.reference is not None
                                                  else (None, None))
                log.add(EngineRun(self.core, self.model, latency_ms, ok, cpu_ms, reference_ms,
                                  reference_cpu_ms))

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def recording_factory(target: LogTarget, cache_dir: Any, references: ReferencePool | None = None) -> Any:
    """An EngineManager `engine_factory` building the usual engines, wrapped to record into `target`;
    engines on the cpu core (and its cpuN instances) get a reference workload with their own intra-op
    thread count."""
    references = references if references is not None else ReferencePool()

    def factory(spec: Any, core: str) -> Engine:
        engine = create_engine(spec, core, cache_dir=cache_dir)
        on_cpu = base_core(core) == "cpu"
        reference = references.get(getattr(engine, "intra_op_threads", None)) if on_cpu else None
        return RecordingEngine(engine, target, reference)

    return factory
