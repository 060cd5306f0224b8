"""What every engine offers the manager, and the factory that picks a backend for a core.

An engine is one model made runnable on one core; it runs one request at a time (the manager's worker
thread guarantees that). Backends: onnxruntime (cpu everywhere; gpu/dla through its CUDA or TensorRT
execution providers when installed) and native TensorRT 10 (gpu, dla0, dla1).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dla_perception.runtime.errors import EngineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of a model. A dimension of -1 is dynamic (any size accepted)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": np.dtype(self.dtype).name}


class Engine(abc.ABC):
    """One model on one core. Subclasses fill `model`, `core`, `precision` and `backend`."""

    model: str
    core: str
    precision: str
    backend: str

    @abc.abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def output_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request; inputs are already validated and C-contiguous."""

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "core": self.core,
            "precision": self.precision,
            "backend": self.backend,
            "inputs": [spec.as_dict() for spec in self.input_specs()],
            "outputs": [spec.as_dict() for spec in self.output_specs()],
        }

    def close(self) -> None:  # noqa: B027 - optional hook, most engines free on garbage collection
        """Release backend resources."""


def tensorrt_importable() -> bool:
    """True when a real `tensorrt` module imports (the registry stubs raise on import)."""
    try:
        import tensorrt
    except Exception:
        return False
    return hasattr(tensorrt, "Builder")


def create_engine(
    spec: Any,
    core: str,
    *,
    cache_dir: Path | None = None,
) -> Engine:
    """Make `spec` (a ModelSpec) runnable on `core`, or raise EngineError saying why not.

    cpu -> onnxruntime. gpu/dla -> native TensorRT when it imports, otherwise onnxruntime's CUDA
    (gpu) or TensorRT (gpu, dla) execution provider when the installed onnxruntime has it.
    """
    from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine, onnxruntime_providers

    if core == "cpu":
        return OnnxRuntimeEngine(spec.onnx, model=spec.name, core="cpu",
                                 intra_op_threads=spec.intra_op_threads)
    reasons = []
    if tensorrt_importable():
        from dla_perception.runtime.tensorrt_engine import TensorRTEngine

        try:
            return TensorRTEngine.from_spec(spec, core, cache_dir=cache_dir)
        except EngineError as exc:
            reasons.append(f"TensorRT: {exc}")
    else:
        reasons.append("TensorRT: python module 'tensorrt' not importable")
    providers = onnxruntime_providers()
    if "TensorrtExecutionProvider" in providers or (core == "gpu" and "CUDAExecutionProvider" in providers):
        try:
            return OnnxRuntimeEngine(spec.onnx, model=spec.name, core=core, precision=spec.precision,
                                     cache_dir=cache_dir, calibration_cache=spec.calibration_cache)
        except EngineError as exc:
            reasons.append(f"onnxruntime: {exc}")
    else:
        reasons.append(f"onnxruntime: no CUDA/TensorRT execution provider (has {', '.join(providers)})")
    raise EngineError(f"cannot run '{spec.name}' on {core}: " + "; ".join(reasons))
