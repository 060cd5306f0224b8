"""Engines that hang, answer late or fail on command: plain Engine subclasses over numpy (y = x + 0), for the
fault tests and benchmarks/bench_faults.py. Real threads block in them exactly as in a wedged driver call:
inside `run`, out of Python's reach, until the test releases them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from dla_perception.runtime.config import EnginesConfig, ModelSpec
from dla_perception.runtime.engine import Engine, TensorSpec

SHAPE = (1, 4)


class FaultyEngine(Engine):
    """`y = x` on its core, with faults armed by the test.

    - `hang_next()`: the next run blocks until `release()` (a hung DLA); `entered` is set once it blocks.
    - `fail_next(n)`: the next n runs raise.
    - `hold(event)`: every run waits for `event` first (a busy core, released by the test).
    `answered` lists the first input value of every run that returned (which frames this core answered).
    """

    precision = "fp32"
    backend = "numpy"

    def __init__(self, model: str, core: str) -> None:
        self.model, self.core = model, core
        self._lock = threading.Lock()
        self._hang = threading.Event()
        self._hang.set()
        self._armed = False
        self._fail = 0
        self._hold: threading.Event | None = None
        self.entered = threading.Event()  # a run is blocked in the armed hang
        self.started = threading.Event()  # a run began (set at every run's start)
        self.answered: list[float] = []
        self.runs = 0
        self.closed = False

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec("x", SHAPE, np.dtype(np.float32))]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec("y", SHAPE, np.dtype(np.float32))]

    def hang_next(self) -> None:
        with self._lock:
            self._hang.clear()
            self._armed = True
            self.entered.clear()

    def release(self) -> None:
        self._hang.set()

    def fail_next(self, count: int = 1) -> None:
        with self._lock:
            self._fail = count

    def hold(self, event: threading.Event | None) -> None:
        self._hold = event

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self.runs += 1
            hang, self._armed = self._armed, False
            fail = self._fail > 0
            self._fail -= int(fail)
        self.started.set()
        if self._hold is not None:
            self._hold.wait()
        if hang:
            self.entered.set()
            self._hang.wait()
        if fail:
            raise RuntimeError(f"injected failure on {self.core}")
        self.answered.append(float(inputs["x"].flat[0]))
        return {"y": inputs["x"].copy()}

    def close(self) -> None:
        self.closed = True


class Engines(dict):
    """core -> FaultyEngine, filled by the manager through `factory`."""

    def factory(self, spec: ModelSpec, core: str) -> FaultyEngine:
        engine = FaultyEngine(spec.name, core)
        self[core] = engine
        return engine


def frame(value: float) -> dict[str, np.ndarray]:
    return {"x": np.full(SHAPE, value, np.float32)}


def two_core_config(deadline_ms: float | None = 200.0, policy: str = "round_robin", queue_size: int = 2,
                    cores: tuple[str, ...] = ("dla0", "dla1"),
                    budgets: dict[str, float] | None = None) -> EnginesConfig:
    """Model "m" on `cores`; without `deadline_ms` each core's deadline is 4x its budget (50 ms: 200 ms)."""
    spec = ModelSpec("m", Path("m.onnx"), cores, precision="fp16", policy=policy, queue_size=queue_size,
                     deadline_ms=deadline_ms)
    return EnginesConfig({"m": spec}, Path("cache"), budgets or {"dla0": 50.0, "dla1": 50.0})
