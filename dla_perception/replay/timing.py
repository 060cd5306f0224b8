"""Every engine run of a replay, timed: the samples behind per-core percentiles and histograms.

The engine manager's own statistics cover a rolling window (made for live diagnostics); a replay needs all
of its runs. The manager's `engine_factory` hook builds each engine through `RecordingEngine`, which
delegates to the real engine and logs (core, model, latency) for every run into the RunLog that a
`LogTarget` points at: a manager kept for several replays (engine_cache) logs each replay's runs into that
replay's own RunLog.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dla_perception.runtime.backends import create_engine
from dla_perception.runtime.engine import Engine, TensorSpec


@dataclass(frozen=True)
class EngineRun:
    core: str
    model: str
    latency_ms: float
    ok: bool
    cpu_ms: float = 0.0  # process CPU time during the run: the work itself for a cpu-core engine


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

    def __init__(self, inner: Engine, target: LogTarget) -> None:
        self.inner = inner
        self.target = target
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
            log = self.target.log
            if log is not None:
                log.add(EngineRun(self.core, self.model, (time.perf_counter() - started) * 1e3, ok,
                                  (time.process_time() - cpu_started) * 1e3))

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


def recording_factory(target: LogTarget, cache_dir: Any) -> Any:
    """An EngineManager `engine_factory` building the usual engines, wrapped to record into `target`."""

    def factory(spec: Any, core: str) -> Engine:
        return RecordingEngine(create_engine(spec, core, cache_dir=cache_dir), target)

    return factory
