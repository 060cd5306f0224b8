"""cuDLA engine: a DLA standalone loadable on one DLA core, run through `cuda.bindings.cudla` in hybrid mode.

Written against cuda-bindings 13.x (CUDA 13 / JetPack 7; the 12.9 line for JetPack 6 has no cuDLA module)
and cudla.h, cited where each call is made; tested with the second sanctioned double (test/cudla_double.py).
Per engine, i.e. per (model, DLA core), once: a device handle (`create_device(core, CUDLA_CUDA_DLA)`; cuDLA
holds one loadable per handle), the module (`module_load_from_memory`), its tensor descriptors
(`module_get_attributes`), and per I/O tensor a CUDA buffer registered with `mem_register` plus a pinned host
staging buffer that numpy converts into and out of (runtime/dla_formats.py), a non-blocking CUDA stream, an
event and the `Task` struct. Per request: pack inputs into staging, copy to the DLA buffers, `submit_task` on
the stream, copy the outputs back, record the event, and poll it until the request's wait limit
(`run_until`, given by the worker: the moment the watchdog would call the core stuck). A task not done by
then raises TaskTimeout and stays outstanding: the next run waits for it first (its buffers are shared),
and the DLA itself drops a hung task after `set_task_timeout_in_ms` (the same wait window, so the core
comes back by itself); `get_last_error` after each task reports DLA faults.

Standalone mode (no CUDA context; NvSci buffers and fences) is chosen with `cudla_mode: standalone` and is
refused, with the reason, while the binding lacks the NvSci calls (13.5.0 binds none of them, and its
`create_device` raises ERROR_UNSUPPORTED_OPERATION for CUDLA_STANDALONE before calling the library).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import math
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx

from dla_perception.runtime.config import DEFAULT_CACHE_DIR, DEFAULT_PLANS_TO_KEEP
from dla_perception.runtime.cudla_build import LOADABLE_SUFFIX
from dla_perception.runtime.dla_formats import Converter, LayoutError, layout_from_descriptor
from dla_perception.runtime.engine import Engine, TensorSpec
from dla_perception.runtime.errors import EngineError, TaskTimeout
from dla_perception.runtime.plan_cache import PlanCache

log = logging.getLogger(__name__)

CUDLA_CUDA_DLA = 0  # cudla.h cudlaMode: CUDLA_CUDA_DLA = 0 ("Hybrid mode"), CUDLA_STANDALONE = 1
NUM_INPUTS, NUM_OUTPUTS, INPUT_DESCRIPTORS, OUTPUT_DESCRIPTORS = 0, 1, 2, 3  # cudlaModuleAttributeType
CUDA_SUCCESS, CUDA_NOT_READY = 0, 600  # cudaError_t: cudaSuccess, cudaErrorNotReady
NVSCI_CALLS = ("import_external_memory", "import_external_semaphore", "get_nv_sci_sync_attributes")
MAX_TASK_TIMEOUT_MS = 1_000_000  # cudlaSetTaskTimeoutInMs: 0 or "greater than 1000 sec" is invalid
DEFAULT_WAIT_S = 30.0  # run() without a limit: cuDLA's own default task timeout
CLOSE_WAIT_S = 2.0  # close() waits this long for an outstanding task before leaving the handle alone


def import_cudla() -> tuple[ModuleType, ModuleType]:
    """(cuda.bindings.cudla, cuda.bindings.runtime), or EngineError saying what is missing."""
    try:
        cudla = importlib.import_module("cuda.bindings.cudla")
        runtime = importlib.import_module("cuda.bindings.runtime")
    except ImportError as exc:
        raise EngineError(
            f"python module cuda.bindings.cudla not importable ({exc}): it comes with cuda-bindings 13.x "
            "(CUDA 13 / JetPack 7); the 12.9 line for JetPack 6 has none"
        ) from exc
    return cudla, runtime


def cudla_unavailable(core: str) -> str | None:
    """Why cuDLA cannot serve `core` on this machine (None: it can), in one line."""
    try:
        cudla, _ = import_cudla()
    except EngineError as exc:
        return str(exc)
    try:
        count = int(cudla.device_get_count())
    except Exception as exc:  # cuda.pathfinder's DynamicLibNotFoundError when libcudla.so.1 is absent
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"libcudla not loadable ({first}); cuDLA ships with JetPack on Jetson AGX Orin / Orin NX"
    index = int(core[3:])
    if index >= count:
        return f"cuDLA reports {count} DLA core(s), so {core} is absent"
    return None


def standalone_unavailable(cudla: ModuleType) -> str:
    """Why standalone mode is refused (it needs NvSci buffers and fences from the binding)."""
    missing = [name for name in NVSCI_CALLS if not hasattr(cudla, name)]
    if missing:
        return (f"cuDLA standalone mode needs NvSci buffers and fences, and this cuda.bindings.cudla binds "
                f"none of {', '.join(missing)} (cudlaImportExternalMemory, cudlaImportExternalSemaphore, "
                "cudlaGetNvSciSyncAttributes); its create_device refuses CUDLA_STANDALONE: use cudla_mode: "
                "hybrid")
    return "cuDLA standalone mode (NvSci) is not implemented by this backend yet: use cudla_mode: hybrid"


def onnx_io(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model's own inputs and outputs: what the engine takes and returns, whatever the DLA formats."""
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def spec(value: Any) -> TensorSpec:
        dims = value.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        return TensorSpec(value.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(
            value.type.tensor_type.elem_type)))

    return ([spec(v) for v in graph.input if v.name not in initializers], [spec(v) for v in graph.output])


class CudlaEngine(Engine):
    """One loadable on one DLA core through cuDLA (hybrid mode): handle, module and buffers made once."""

    backend = "cudla"

    def __init__(self, loadable: bytes, *, model: str, core: str, precision: str, io: dict[str, Any],
                 inputs: list[TensorSpec], outputs: list[TensorSpec], cudla: ModuleType | None = None,
                 runtime: ModuleType | None = None, loadable_path: Path | None = None,
                 cache_error: str | None = None) -> None:
        if cudla is None or runtime is None:
            cudla, runtime = import_cudla()
        self.cudla, self.rt = cudla, runtime
        self.model, self.core, self.precision = model, core, precision
        self.loadable_path, self.cache_error = loadable_path, cache_error
        self._inputs, self._outputs = list(inputs), list(outputs)
        self._device = self._module = 0
        self._stream = self._event = None
        self._cuda: list[Any] = []  # (free function name, pointer) to release
        self._registered: list[int] = []
        self._in: list[dict[str, Any]] = []
        self._out: list[dict[str, Any]] = []
        self._pending_since: float | None = None  # monotonic time of an outstanding task's submission
        self._timeout_ms = 0
        self.tasks = self.polls = self.timeouts = 0
        try:
            self._open(loadable, io)
        except Exception:
            self.close()
            raise

    def _call(self, what: str, function: Any, *args: Any) -> Any:
        """A cuDLA call; CudlaError (or anything it raises) becomes EngineError naming the call."""
        try:
            return function(*args)
        except Exception as exc:
            raise EngineError(f"cuDLA {what} failed for '{self.model}' on {self.core}: {exc}") from exc

    def _cuda_call(self, what: str, result: Any) -> Any:
        """A cuda.bindings.runtime result tuple: (cudaError_t, value...) -> value, or EngineError."""
        error = result[0]
        if int(error) != CUDA_SUCCESS:
            name = getattr(error, "name", str(int(error)))
            raise EngineError(f"CUDA {what} failed for '{self.model}' on {self.core}: {name}")
        return result[1] if len(result) > 1 else None

    def _open(self, loadable: bytes, io: dict[str, Any]) -> None:
        cudla, rt = self.cudla, self.rt
        self._cuda_call("cudaSetDevice(0)", rt.cudaSetDevice(0))  # hybrid: "the current set GPU device"
        self._device = self._call("create_device", cudla.create_device, int(self.core[3:]), CUDLA_CUDA_DLA)
        self._module = self._call("module_load_from_memory", cudla.module_load_from_memory, self._device,
                                  loadable, len(loadable), 0)
        self._stream = self._cuda_call("cudaStreamCreateWithFlags",
                                       rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking))
        self._event = self._cuda_call("cudaEventCreateWithFlags",
                                      rt.cudaEventCreateWithFlags(rt.cudaEventDisableTiming))
        self._in = self._tensors(INPUT_DESCRIPTORS, self._inputs, io, is_input=True)
        self._out = self._tensors(OUTPUT_DESCRIPTORS, self._outputs, io, is_input=False)
        for tensor in self._out:  # as NVIDIA's hybrid sample does: outputs start zeroed
            self._cuda_call("cudaMemsetAsync", rt.cudaMemsetAsync(tensor["device"], 0, tensor["size"],
                                                                  self._stream))
        self._cuda_call("cudaStreamSynchronize", rt.cudaStreamSynchronize(self._stream))
        self._task = cudla.Task()
        self._task.module_handle = self._module
        self._task.input_tensor = [tensor["registered"] for tensor in self._in]
        self._task.output_tensor = [tensor["registered"] for tensor in self._out]
        self._task.wait_events = 0  # hybrid mode: no NvSci events ("must be NULL")
        self._task.signal_events = 0

    def _tensors(self, attribute: int, specs: list[TensorSpec], io: dict[str, Any],
                 is_input: bool) -> list[dict[str, Any]]:
        """Buffers for the module's tensors in descriptor order (the order of the task's arrays)."""
        descriptors = self._call("module_get_attributes", self.cudla.module_get_attributes, self._module,
                                 attribute)
        by_name = {spec.name: spec for spec in specs}
        names = [str(d.name) for d in descriptors]
        if sorted(names) != sorted(by_name):
            kind = "inputs" if is_input else "outputs"
            raise EngineError(f"'{self.model}': the loadable's {kind} {names} are not the model's "
                              f"{sorted(by_name)}")
        tensors = []
        for descriptor in descriptors:
            try:
                layout = layout_from_descriptor(descriptor)
            except LayoutError as exc:
                raise EngineError(f"'{self.model}' on {self.core}: {exc}") from exc
            spec = by_name[layout.name]
            if tuple(spec.shape) != layout.shape:
                raise EngineError(f"'{self.model}': tensor '{layout.name}' is {layout.shape} in the "
                                  f"loadable, {tuple(spec.shape)} in the model")
            size = layout.size
            device = self._cuda_call("cudaMalloc", self.rt.cudaMalloc(size))  # 256-byte aligned (32 needed)
            self._cuda.append(("cudaFree", device))
            registered = self._call("mem_register", self.cudla.mem_register, self._device, device, size, 0)
            self._registered.append(registered)
            host = self._cuda_call("cudaMallocHost", self.rt.cudaMallocHost(size))
            self._cuda.append(("cudaFreeHost", host))
            staging = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(host))
            scale = (io.get(layout.name) or {}).get("scale")
            try:
                converter = Converter(layout, staging, scale, spec.dtype)
            except LayoutError as exc:
                raise EngineError(f"'{self.model}' on {self.core}: {exc}") from exc
            tensors.append({"name": layout.name, "size": size, "device": device, "host": host,
                            "registered": registered, "converter": converter})
        return tensors

    # -- running ------------------------------------------------------------------------------------

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run_until(inputs, time.monotonic() + DEFAULT_WAIT_S)

    def run_until(self, inputs: dict[str, np.ndarray], until: float) -> dict[str, np.ndarray]:
        rt = self.rt
        if self._pending_since is not None:  # the last task outlived its wait: its buffers are still in use
            if not self._wait(until):
                age_ms = (time.monotonic() - self._pending_since) * 1e3
                raise TaskTimeout(f"cuDLA task of '{self.model}' on {self.core} submitted {age_ms:.0f} ms "
                                  "ago is still running")
            self._pending_since = None
            try:  # that answer was given up already; only say what became of the task
                self._check_last_error("a task given up earlier")
            except EngineError as exc:
                log.warning("%s", exc)
        for tensor in self._in:
            tensor["converter"].pack(inputs[tensor["name"]])
            self._cuda_call("cudaMemcpyAsync", rt.cudaMemcpyAsync(
                tensor["device"], tensor["host"], tensor["size"], rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                self._stream))
        submitted = time.monotonic()
        self._set_task_timeout(until - submitted)
        self._call("submit_task", self.cudla.submit_task, self._device, self._task.ptr, 1, int(self._stream),
                   0)
        self._pending_since = submitted
        self.tasks += 1
        for tensor in self._out:
            self._cuda_call("cudaMemcpyAsync", rt.cudaMemcpyAsync(
                tensor["host"], tensor["device"], tensor["size"], rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                self._stream))
        self._cuda_call("cudaEventRecord", rt.cudaEventRecord(self._event, self._stream))
        if not self._wait(until):
            self.timeouts += 1
            waited_ms = (time.monotonic() - submitted) * 1e3
            raise TaskTimeout(f"cuDLA task of '{self.model}' on {self.core} not done {waited_ms:.0f} ms "
                              "after submission (its wait limit); it may still be running on the DLA")
        self._pending_since = None
        self._check_last_error("the task")
        return {tensor["name"]: tensor["converter"].unpack() for tensor in self._out}

    def _set_task_timeout(self, window_s: float) -> None:
        """The DLA drops a task after this window (cudlaSetTaskTimeoutInMs, per handle); set on change."""
        wanted = min(MAX_TASK_TIMEOUT_MS, max(10, math.ceil(window_s * 100) * 10))  # 10 ms steps
        if wanted != self._timeout_ms:
            self._call("set_task_timeout_in_ms", self.cudla.set_task_timeout_in_ms, self._device, wanted)
            self._timeout_ms = wanted

    def _wait(self, until: float) -> bool:
        """Poll the event until it completes (True) or `until` passes (False); sleeps grow 0.1 -> 2 ms."""
        pause = 1e-4
        while True:
            self.polls += 1
            status = self.rt.cudaEventQuery(self._event)[0]
            if int(status) == CUDA_SUCCESS:
                return True
            if int(status) != CUDA_NOT_READY:
                self._cuda_call("cudaEventQuery", (status,))
            left = until - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 2e-3)

    def _check_last_error(self, what: str) -> None:
        status = int(self._call("get_last_error", self.cudla.get_last_error, self._device))
        if status:
            try:
                name = self.cudla.Status(status).name
            except ValueError:
                name = str(status)
            raise EngineError(f"cuDLA reports {name} ({status}) after {what} of '{self.model}' on "
                              f"{self.core}")

    # -- building or loading ------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: Any, core: str, *, cache_dir: Path | None,
                  plans_to_keep: int = DEFAULT_PLANS_TO_KEEP, trt: ModuleType | None = None,
                  cudla: ModuleType | None = None, runtime: ModuleType | None = None,
                  gpu_name: str | None = None) -> CudlaEngine:
        """Load the cached loadable for (spec, core) when its record matches, else build (and cache) one."""
        from dla_perception.runtime.tensorrt_build import (
            BuildOptions,
            build_mode,
            build_plan,
            model_facts,
            plan_key,
        )
        from dla_perception.runtime.tensorrt_engine import import_tensorrt

        if getattr(spec, "cudla_mode", "hybrid") == "standalone":
            raise EngineError(standalone_unavailable(cudla or import_cudla()[0]))
        trt = trt or import_tensorrt()  # builds the loadable and keys the cache (its version is in the key)
        options = BuildOptions(core=core, precision=spec.precision, gpu_fallback=False,
                               calibration_cache=spec.calibration_cache, loadable=True)
        build_mode(trt, options, model_facts(spec.onnx))
        if gpu_name is None:
            from dla_perception.runtime.cores import probe_cuda

            gpu_name = probe_cuda()[1] or "unknown-gpu"
        cache = PlanCache(cache_dir or Path(DEFAULT_CACHE_DIR), keep=plans_to_keep, suffix=LOADABLE_SUFFIX)
        key = plan_key(spec.onnx, options, str(trt.__version__), gpu_name)
        inputs, outputs = onnx_io(spec.onnx)
        common = {"model": spec.name, "core": core, "precision": spec.precision, "inputs": inputs,
                  "outputs": outputs, "cudla": cudla, "runtime": runtime}
        cached = cache.load(spec.name, key)
        if cached is not None:
            data, record = cached
            try:
                return cls(data, io=record["build"].get("loadable_io", {}),
                           loadable_path=cache.paths(spec.name, key)[0], **common)
            except EngineError as exc:
                log.warning("cached loadable %s does not load (%s): rebuilding",
                            cache.paths(spec.name, key)[0], exc)
        log.info("building a DLA standalone loadable for '%s' on %s (%s)", spec.name, core, spec.precision)
        data, info = build_plan(trt, spec.onnx, options)
        path = cache.store(spec.name, key, data, info)
        return cls(data, io=info.get("loadable_io", {}), loadable_path=path, cache_error=cache.last_error,
                   **common)

    # -- reporting and lifetime ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(mode="hybrid", loadable=str(self.loadable_path) if self.loadable_path else None,
                    tasks=self.tasks, task_timeouts=self.timeouts, polls_per_task=round(
                        self.polls / self.tasks, 2) if self.tasks else 0.0,
                    dla_io={t["name"]: t["converter"].layout.describe() for t in self._in + self._out})
        if self.cache_error:
            info["plan_cache_error"] = self.cache_error
        return info

    def close(self) -> None:
        """Release everything, once the last task is done; a task still running after CLOSE_WAIT_S keeps
        its handle and buffers alive (destroying them under it "can lead to application crashes")."""
        if self._pending_since is not None and self._event is not None:
            if not self._wait(time.monotonic() + CLOSE_WAIT_S):
                log.warning("'%s' on %s: a cuDLA task is still running at close; its handle and buffers are "
                            "left alone", self.model, self.core)
                return
            self._pending_since = None
        cudla, rt = self.cudla, self.rt
        for registered in self._registered:
            self._quietly(cudla.mem_unregister, self._device, registered)
        self._registered.clear()
        if self._module:
            self._quietly(cudla.module_unload, self._module, 0)
            self._module = 0
        if self._device:
            self._quietly(cudla.destroy_device, self._device)
            self._device = 0
        for free, pointer in self._cuda:
            self._quietly(getattr(rt, free), pointer)
        self._cuda.clear()
        if self._event is not None:
            self._quietly(rt.cudaEventDestroy, self._event)
            self._event = None
        if self._stream is not None:
            self._quietly(rt.cudaStreamDestroy, self._stream)
            self._stream = None

    def _quietly(self, function: Any, *args: Any) -> None:
        try:
            result = function(*args)
            if isinstance(result, tuple) and result and int(result[0]) != CUDA_SUCCESS:
                log.debug("%s%s: %s", getattr(function, "__name__", function), args, result[0])
        except Exception as exc:
            log.debug("releasing '%s' on %s: %s", self.model, self.core, exc)
