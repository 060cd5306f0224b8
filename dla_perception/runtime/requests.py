"""A request while the manager holds it, and the input checks every request passes before it is queued.

A request carries its stream (camera and task, e.g. `front/proximity`; the model's name unless the caller
names one) with that stream's scheduling state, and its deadline on the time.monotonic() clock. Its future
resolves exactly once: the first answer or error wins and anything later (a hung core answering after the
retry did) is discarded.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dla_perception.runtime.engine import TensorSpec
from dla_perception.runtime.errors import InputValidationError

_sequence = itertools.count()  # submission order across the process: lower = older


class Answer:
    """The one-shot result of a caller blocked in `infer()`: the subset of Future the manager uses, on a
    pre-acquired lock released once. About half a Future's hand-off cost (no condition variable, no
    waiter lock per wait), which is most of what `infer()` costs beyond the engine itself.
    """

    __slots__ = ("_claim", "_ready", "_done", "_cancelled", "_outputs", "_error")

    def __init__(self) -> None:
        self._claim = threading.Lock()  # taken by whoever resolves it first
        self._ready = threading.Lock()
        self._ready.acquire()
        self._done = self._cancelled = False
        self._outputs: dict[str, np.ndarray] | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def set_running_or_notify_cancel(self) -> bool:
        return not self._done

    def _resolve(self, outputs: dict[str, np.ndarray] | None, error: BaseException | None) -> None:
        if not self._claim.acquire(blocking=False):
            raise InvalidStateError("already resolved")
        self._outputs, self._error, self._done = outputs, error, True
        self._ready.release()

    def set_result(self, outputs: dict[str, np.ndarray]) -> None:
        self._resolve(outputs, None)

    def set_exception(self, error: BaseException) -> None:
        self._resolve(None, error)

    def cancel(self) -> bool:
        """Give up waiting: the request is skipped if still queued, its answer discarded if running."""
        if not self._claim.acquire(blocking=False):
            return False
        self._done = self._cancelled = True
        return True

    def result(self, timeout: float | None = None) -> dict[str, np.ndarray]:
        if not self._ready.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise FutureTimeout(f"no answer within {timeout} s")  # what Future.result raises
        self._ready.release()  # stays readable
        if self._error is not None:
            raise self._error
        assert self._outputs is not None
        return self._outputs


@dataclass(eq=False)
class Request:
    model: str
    inputs: dict[str, np.ndarray]
    stream: str
    deadline: float  # time.monotonic() by which the current attempt must answer
    submitted: float
    seq: int = field(default_factory=lambda: next(_sequence))
    future: Future | Answer = field(default_factory=Future)
    tried: list[str] = field(default_factory=list)  # cores that failed it or held it past its deadline
    retried: bool = False  # one retry at most: the pipeline waits at most deadline + the retry's deadline
    started: bool = False
    probe: bool = False  # a watchdog probe of a stuck core, not a caller's request
    stream_state: Any = None  # its runtime.streams.StreamState: priority, rate, counters (None: a probe)

    @property
    def label(self) -> str:
        """How messages name it: "'head' request", with its stream when that is not the model."""
        stream = f" of stream '{self.stream}'" if self.stream != self.model else ""
        return f"'{self.model}' request{stream}"

    @property
    def done(self) -> bool:
        return self.future.done()

    def start(self) -> bool:
        """Mark it running; False when it must not run (answered elsewhere, failed, or cancelled)."""
        if self.future.done():
            return False
        if self.started:
            return True
        self.started = True
        return self.future.set_running_or_notify_cancel()  # False when cancelled while it waited

    def answer(self, outputs: dict[str, np.ndarray]) -> bool:
        """Resolve with outputs; False when it was already resolved (the answer is discarded)."""
        try:
            self.future.set_result(outputs)
        except InvalidStateError:
            return False
        return True

    def fail(self, error: BaseException) -> bool:
        """Resolve with an error; False when it was already resolved (or cancelled)."""
        try:
            self.future.set_exception(error)
        except InvalidStateError:
            return False
        return True


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
