"""TensorRT 10 engine for the GPU or a DLA core: load the cached plan or build it, run it, report placement.

Runtime side of the TensorRT 10.3 API that JetPack 6 ships: one shared logger (tensorrt_logger.py),
`runtime.DLA_core` set before `deserialize_cuda_engine` (deserialisation places the engine on the
runtime's core; left at -1 a DLA engine runs on core 0), I/O by tensor name with `set_tensor_address`, and
`execute_async_v3` on the engine's own CUDA stream. CUDA streams and buffers come from polygraphy.cuda.
Building is tensorrt_build.py, the cache plan_cache.py, the placement report tensorrt_placement.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dla_perception.runtime.config import DEFAULT_CACHE_DIR, DEFAULT_PLANS_TO_KEEP
from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.plan_cache import PlanCache
from dla_perception.runtime.tensorrt_build import BuildOptions, build_mode, build_plan, model_facts, plan_key
from dla_perception.runtime.tensorrt_logger import shared_logger
from dla_perception.runtime.tensorrt_placement import engine_layers, placement_report

log = logging.getLogger(__name__)


def import_tensorrt() -> ModuleType:
    """The real `tensorrt` module, or EngineError saying plainly why not."""
    try:
        import tensorrt as trt
    except Exception as exc:  # the registry's stub packages raise on import
        raise EngineError(
            f"TensorRT is not available ({exc}); on a Jetson it comes with JetPack (python3-libnvinfer)"
        ) from exc
    if not hasattr(trt, "Builder"):
        raise EngineError("the installed 'tensorrt' module has no Builder (a stub package?)")
    return trt


def deserialize(trt: ModuleType, plan: bytes, core: str) -> tuple[Any, Any]:
    """(runtime, engine) with the engine placed on `core`; EngineError when TensorRT refuses the plan."""
    runtime = trt.Runtime(shared_logger(trt))
    if core.startswith("dla"):
        runtime.DLA_core = int(core[3:])  # before deserialising: it places the engine on the core
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineError(f"TensorRT could not deserialize the plan for {core}")
    return runtime, engine


def report_for(
    trt: ModuleType, engine: Any, core: str, build_info: Mapping[str, Any] | None
) -> dict[str, Any]:
    info = dict(build_info or {})
    builder = info.get("builder_placement")
    return placement_report(
        engine_layers(trt, engine),
        dla_engine=core.startswith("dla"),
        builder=builder if isinstance(builder, dict) else None,
        predicted_dla_layers=info.get("predicted_dla_layers"),
    )


def inspect_plan(
    trt: ModuleType, plan: bytes, core: str, build_info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Deserialize `plan` on its core (no buffers, no context) and return its placement report."""
    _, engine = deserialize(trt, plan, core)
    return report_for(trt, engine, core, build_info)


def check_placement(report: Mapping[str, Any], model: str, core: str, gpu_fallback: bool) -> None:
    """A DLA engine with GPU layers is an error when the user asked for none (gpu_fallback: false)."""
    if core.startswith("dla") and not gpu_fallback and report["GPU"]:
        raise EngineError(
            f"'{model}' was built for {core} without GPU fallback, yet TensorRT runs "
            f"{report['GPU']} layer(s) on the GPU: {', '.join(report['gpu_layer_names'][:5])}"
        )


class TensorRTEngine(Engine):
    """A deserialized plan on `core`, with its own CUDA stream and device buffers for every I/O tensor."""

    backend = "tensorrt"

    def __init__(
        self,
        plan: bytes,
        *,
        model: str,
        core: str,
        precision: str,
        build_info: Mapping[str, Any] | None = None,
        trt: ModuleType | None = None,
        cuda: Any = None,
        plan_path: Path | None = None,
        gpu_fallback: bool = True,
        cache_error: str | None = None,
    ) -> None:
        self.trt = trt or import_tensorrt()
        self.cuda = cuda or _polygraphy_cuda()
        self.model, self.core, self.precision = model, core, precision
        self.plan_path, self.cache_error = plan_path, cache_error
        self.build_info = dict(build_info or {})
        self._stream = None
        self._buffers: dict[str, Any] = {}
        trt = self.trt
        self._runtime, self._engine = deserialize(trt, plan, core)
        self.placement = report_for(trt, self._engine, core, self.build_info)
        check_placement(self.placement, model, core, gpu_fallback)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"TensorRT could not create an execution context for '{model}' on {core}")
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        for index in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(index)
            shape = tuple(int(dim) for dim in self._engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            if any(dim < 0 for dim in shape):
                raise EngineError(
                    f"'{model}': tensor '{name}' has dynamic shape {shape}; plans need static shapes"
                )
            if self._engine.get_tensor_format(name) != trt.TensorFormat.LINEAR:
                raise EngineError(
                    f"'{model}': tensor '{name}' uses a DLA-native format; this engine feeds "
                    "linear host arrays (build without --dla-native-io to run it here)"
                )
            spec = TensorSpec(name, shape, dtype)
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(spec)
        try:
            self._stream = self.cuda.Stream()  # the engine's own non-default stream
            for spec in self._inputs + self._outputs:
                self._buffers[spec.name] = self.cuda.DeviceArray(shape=spec.shape, dtype=spec.dtype)
        except Exception as exc:  # polygraphy raises its own exception type when libcudart is missing
            self.close()
            raise EngineError(f"CUDA stream/buffers for '{model}' on {core}: {exc}") from exc
        for name, buffer in self._buffers.items():
            if not self._context.set_tensor_address(name, int(buffer.ptr)):
                self.close()
                raise EngineError(f"TensorRT refused the address of tensor '{name}' of '{model}'")

    @classmethod
    def from_spec(
        cls,
        spec: Any,
        core: str,
        *,
        cache_dir: Path | None,
        plans_to_keep: int = DEFAULT_PLANS_TO_KEEP,
        gpu_name: str | None = None,
        trt: ModuleType | None = None,
        cuda: Any = None,
    ) -> TensorRTEngine:
        """Load the cached plan for (spec, core) when its record matches, otherwise build (and cache) it.

        A cache that cannot be written does not stop the engine: the plan just built is used (one WARNING
        names the path and the reason) and `describe()` shows `plan_cache_error`.
        """
        trt = trt or import_tensorrt()
        options = BuildOptions(
            core=core,
            precision=spec.precision,
            gpu_fallback=spec.gpu_fallback,
            calibration_cache=spec.calibration_cache,
        )
        build_mode(trt, options, model_facts(spec.onnx))  # refuse unsupported combinations before anything
        if gpu_name is None:
            from dla_perception.runtime.cores import probe_cuda

            gpu_name = probe_cuda()[1] or "unknown-gpu"
        cache = PlanCache(cache_dir or Path(DEFAULT_CACHE_DIR), keep=plans_to_keep)
        key = plan_key(spec.onnx, options, str(trt.__version__), gpu_name)
        common = {
            "model": spec.name,
            "core": core,
            "precision": spec.precision,
            "trt": trt,
            "cuda": cuda,
            "gpu_fallback": spec.gpu_fallback,
        }
        cached = cache.load(spec.name, key)
        if cached is not None:
            plan, record = cached
            try:
                return cls(
                    plan, build_info=record["build"], plan_path=cache.paths(spec.name, key)[0], **common
                )
            except EngineError as exc:
                log.warning(
                    "cached plan %s does not load (%s): rebuilding", cache.paths(spec.name, key)[0], exc
                )
        log.info(
            "building TensorRT plan for '%s' on %s (%s); this can take minutes",
            spec.name,
            core,
            spec.precision,
        )
        plan, build_info = build_plan(trt, spec.onnx, options, cuda=cuda or _polygraphy_cuda())
        plan_path = cache.store(spec.name, key, plan, build_info)
        return cls(plan, build_info=build_info, plan_path=plan_path, cache_error=cache.last_error, **common)

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for spec in self._inputs:
            self._buffers[spec.name].copy_from(inputs[spec.name], self._stream)
        if not self._context.execute_async_v3(self._stream.ptr):
            raise EngineError(f"TensorRT execute_async_v3 failed for '{self.model}' on {self.core}")
        results = {}
        for spec in self._outputs:
            host = np.empty(spec.shape, spec.dtype)
            self._buffers[spec.name].copy_to(host, self._stream)
            results[spec.name] = host
        self._stream.synchronize()
        return results

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            tensorrt=str(self.trt.__version__),
            placement=self.placement,
            build_mode=self.build_info.get("mode"),
            plan=str(self.plan_path) if self.plan_path else None,
        )
        if self.cache_error:
            info["plan_cache_error"] = self.cache_error
        return info

    def close(self) -> None:
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers.clear()
        if self._stream is not None:
            self._stream.free()
            self._stream = None


def _polygraphy_cuda() -> Any:
    try:
        from polygraphy import cuda
    except ImportError as exc:
        raise EngineError(
            "polygraphy is needed for CUDA streams and buffers (pip install polygraphy)"
        ) from exc
    return cuda
