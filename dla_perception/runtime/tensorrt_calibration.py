"""Implicit INT8 calibration for TensorRT 10 (the only INT8 route to Orin's DLA on JetPack 6).

The binding swallows what a Python calibrator raises: pyInt8.cpp wraps get_batch, get_batch_size,
read_calibration_cache and write_calibration_cache in try/catch, prints "[ERROR] Exception caught in
get_batch(): ..." to stderr and returns false/-1/nullptr, so a failing get_batch reads as "no more data"
and a failing cache write is lost. This calibrator keeps the first exception and `raise_if_failed`
re-raises it after the build with the original message. Batches are checked against the network's inputs
before the build starts, so a wrong name, shape or dtype is a clear error instead of a bad calibration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.plan_cache import atomic_write


def validate_batches(
    batches: Iterable[Mapping[str, np.ndarray]], inputs: Sequence[tuple[str, tuple[int, ...], np.dtype]]
) -> list[dict[str, np.ndarray]]:
    """Each batch as {input name: C-contiguous array of the input's exact shape and dtype}, or EngineError."""
    checked = []
    for index, batch in enumerate(batches):
        names = {name for name, _, _ in inputs}
        if set(batch) != names:
            raise EngineError(
                f"calibration batch {index} has inputs {sorted(batch)}, the network has {sorted(names)}"
            )
        arrays = {}
        for name, shape, dtype in inputs:
            array = np.asarray(batch[name])
            if tuple(array.shape) != tuple(shape):
                raise EngineError(
                    f"calibration batch {index}: '{name}' has shape {tuple(array.shape)}, the "
                    f"network input is {tuple(shape)}"
                )
            if array.dtype != dtype:
                raise EngineError(
                    f"calibration batch {index}: '{name}' is {array.dtype}, the network input is "
                    f"{np.dtype(dtype).name}"
                )
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise EngineError(f"calibration batch {index}: '{name}' holds NaN or infinite values")
            arrays[name] = np.ascontiguousarray(array)
        checked.append(arrays)
    if not checked:
        raise EngineError("calibration data holds no batch")
    return checked


def make_entropy_calibrator(
    trt: ModuleType,
    cache_path: Path | None = None,
    batches: Sequence[Mapping[str, np.ndarray]] | None = None,
    cuda: Any = None,
    cache: bytes | None = None,
) -> Any:
    """An IInt8EntropyCalibrator2 (the calibrator DLA needs).

    Ranges come from `cache` (bytes, e.g. translated from a Q/DQ model), else from `cache_path` when it
    exists, else from `batches` uploaded one at a time (and then written to `cache_path`).
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EngineError(f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2 (removed in 11.0)")
    if batches and cuda is None:
        raise EngineError("calibration data needs CUDA buffers (polygraphy.cuda)")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches or ())
            self._buffers: dict[str, Any] = {}
            self.batches_used = 0
            self.error: BaseException | None = None
            self.failed_in: str | None = None

        def _keep(self, method: str, exc: BaseException) -> None:
            if self.error is None:
                self.error, self.failed_in = exc, method

        def get_batch_size(self) -> int:
            return 1  # explicit-batch networks: the batch lives in the tensor shapes

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                batch = next(self._batches, None)
                if batch is None:
                    return None
                pointers = []
                for name in names:
                    array = batch[name]
                    buffer = self._buffers.get(name)
                    if buffer is None:
                        buffer = self._buffers[name] = cuda.DeviceArray(shape=array.shape, dtype=array.dtype)
                    buffer.resize(array.shape)
                    buffer.copy_from(array)
                    pointers.append(int(buffer.ptr))
                self.batches_used += 1
                return pointers
            except BaseException as exc:  # the binding would print and swallow it
                self._keep("get_batch", exc)
                return None

        def read_calibration_cache(self) -> bytes | None:
            try:
                if cache is not None:
                    return bytes(cache)
                if cache_path is not None and cache_path.is_file():
                    return cache_path.read_bytes()
                return None
            except BaseException as exc:
                self._keep("read_calibration_cache", exc)
                return None

        def write_calibration_cache(self, data: Any) -> None:
            try:
                if cache_path is not None and cache is None:
                    atomic_write(cache_path, bytes(data))
            except BaseException as exc:
                self._keep("write_calibration_cache", exc)

        def free(self) -> None:
            for buffer in self._buffers.values():
                buffer.free()
            self._buffers.clear()

    return EntropyCalibrator()


def raise_if_failed(calibrator: Any) -> None:
    """Re-raise, after the build, what the calibrator raised inside TensorRT's callbacks."""
    error = getattr(calibrator, "error", None)
    if error is not None:
        raise EngineError(
            f"INT8 calibration failed in {calibrator.failed_in}: {type(error).__name__}: {error}"
        ) from error
