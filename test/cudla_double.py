"""THE SECOND SANCTIONED TEST DOUBLE of this project: a strict stand-in for `cuda.bindings.cudla`.

No Jetson, no libcudla here, so the cuDLA backend (runtime/cudla_engine.py) is tested against this module,
installed as `sys.modules["cuda.bindings.cudla"]` with its CUDA half (cudla_double_runtime.py) as
`cuda.bindings.runtime` (the `cudla` fixture of conftest.py). It is built from the real binding's surface:
cuda-bindings 13.5.0's x86 wheel installs here and its `cuda.bindings.cudla` imports (its calls raise
DynamicLibNotFoundError for libcudla.so.1), and test_cudla_double.py compares every function, enum, struct
and dtype this module provides with it: names, parameters, enum values, struct fields. Behaviour follows
cudla.h (CUDA 12/13, cited per rule) and the binding's cudla.pyx:
- `create_device` raises CudlaError(ERROR_UNSUPPORTED_OPERATION) for CUDLA_STANDALONE before calling the
  library (cudla.pyx 13.x: "if flags & CUDLA_STANDALONE: raise"), ERROR_INVALID_DEVICE past the count;
- "Multiple loadables are not allowed to load onto single cuDLA device handle" (cudlaModuleLoadFromMemory);
- cudlaMemRegister registers CUDA memory ("The CUDA pointer to be registered"), ERROR_INVALID_ADDRESS for
  anything else or a pointer not 32-byte aligned ("undefined behavior if ... not 32-byte aligned"),
  ERROR_MEMORY_REGISTERED for a second registration; flags "Must be set to 0";
- cudlaSubmitTask in hybrid mode: "The stream parameter must be specified as the CUDA stream"; every tensor
  "pre-registered using cudlaMemRegister" (else ERROR_INVALID_ADDRESS); waitEvents/signalEvents must be
  NULL in hybrid mode (ERROR_UNSUPPORTED_OPERATION). The task struct is read from memory at `ptr_to_tasks`
  in `task_dtype`'s layout, as the C library reads it;
- "The DLA tasks execute asynchronously"; cudlaGetLastError reports "the status of the task executed by
  the DLA HW most recently"; cudlaSetTaskTimeoutInMs: per handle, "30 seconds as default", 0 or more than
  1000 s is ERROR_INVALID_PARAM; a task running past it ends with ERROR_DLA_ERR_ENGINE_TIMEOUT (the DLA
  gives up on it; its outputs are not written);
- destroying a handle with a task still running "can lead to application crashes": the double raises.
Unverified, so the backend must not depend on it: the status a corrupt loadable gives (ERROR_UMD here),
and whether a loadable built for one core loads on the other (allowed here, recorded).
A task executes for real: the loadable (built by the TensorRT double, tensorrt_double_loadable.py) holds
the ONNX, which onnxruntime runs on the inputs read from the registered buffers in their DLA formats.
Its parts: cudla_double_types.py (enums, CudlaError, the structs and their dtypes) and
cudla_double_runtime.py (the CUDA runtime calls of hybrid mode). Knobs in `double_state`: `task_delay_s`,
`hang` (a threading.Event the task waits on, or {core index: Event}), `fail_next` (a Status the next task
ends with).
"""

from __future__ import annotations

import ctypes
import itertools
import time
import types
from typing import Any

import numpy as np
import onnxruntime
import tensorrt_double_loadable as loadable_part
from cudla_double_types import (
    AccessPermissionFlags,
    CudlaError,
    DevAttribute,
    DevAttributeType,
    FenceType,
    Mode,
    ModuleAttributeType,
    ModuleLoadFlags,
    ModuleTensorDescriptor,
    Status,
    SubmissionFlags,
    Task,
    check_status,
    descriptor,
    dev_attribute_dtype,
    module_tensor_descriptor_dtype,
    task_dtype,
)


class _Device:
    def __init__(self, index: int) -> None:
        self.index = index
        self.module: dict[str, Any] | None = None
        self.session: Any = None
        self.registered: dict[int, tuple[int, int]] = {}  # dev ptr -> (CUDA pointer, size)
        self.timeout_ms = 30_000  # "cuDLA sets 30 seconds as default timeout value"
        self.last_status = Status.SUCCESS
        self.running = 0


def make_cudla(runtime: types.ModuleType, num_devices: int = 2) -> types.ModuleType:
    """A fresh `cuda.bindings.cudla` stand-in over `runtime` (cudla_double_runtime.make_runtime())."""
    module = types.ModuleType("cuda.bindings.cudla")
    handles = itertools.count(0x6D1A_0000)
    mappings = itertools.count(0x7D1A_0000_0000, 0x1_0000_0000)
    state: dict[str, Any] = {"devices": {}, "modules": {}, "submissions": [], "loaded_on": [],
                             "task_delay_s": 0.0, "hang": None, "fail_next": None, "timeouts_set": []}

    def device(handle: int) -> _Device:
        found = state["devices"].get(int(handle))
        if found is None:
            raise CudlaError(Status.ERROR_INVALID_DEVICE)
        return found

    def get_version() -> int:
        return 1_005_000  # "1000000*major + 1000*minor + patch"

    def device_get_count() -> int:
        return num_devices

    def create_device(device: int, flags: int) -> int:
        if flags & Mode.STANDALONE:
            raise CudlaError(Status.ERROR_UNSUPPORTED_OPERATION)  # cudla.pyx, before calling the library
        if not 0 <= int(device) < num_devices:
            raise CudlaError(Status.ERROR_INVALID_DEVICE)
        handle = next(handles)
        state["devices"][handle] = _Device(int(device))
        return handle

    def destroy_device(dev_handle: int) -> None:
        found = device(dev_handle)
        if found.running:
            raise RuntimeError("double: cudlaDestroyDevice with a task still running (the real library may "
                               "crash: 'ensure that all the tasks submitted previously ... are completed')")
        del state["devices"][int(dev_handle)]

    def device_get_attribute(dev_handle: int, attrib: int) -> DevAttribute:
        device(dev_handle)
        attribute = DevAttribute()
        if attrib == DevAttributeType.UNIFIED_ADDRESSING:
            attribute.unified_addressing_supported = 1
        elif attrib == DevAttributeType.DEVICE_VERSION:
            attribute.device_version = 2  # "Xavier has 1.0 and Orin has 2.0"
        else:
            raise CudlaError(Status.ERROR_INVALID_ATTRIBUTE)
        return attribute

    def mem_register(dev_handle: int, ptr: int, size: int, flags: int) -> int:
        found = device(dev_handle)
        if flags != 0:
            raise CudlaError(Status.ERROR_INVALID_PARAM)
        if int(ptr) & 0x1F or runtime.double_owner(int(ptr), int(size)) != "device":
            raise CudlaError(Status.ERROR_INVALID_ADDRESS)
        if any(start == int(ptr) for start, _ in found.registered.values()):
            raise CudlaError(Status.ERROR_MEMORY_REGISTERED)
        mapping = next(mappings)
        found.registered[mapping] = (int(ptr), int(size))
        return mapping

    def mem_unregister(dev_handle: int, dev_ptr: int) -> None:
        if device(dev_handle).registered.pop(int(dev_ptr), None) is None:
            raise CudlaError(Status.ERROR_INVALID_ADDRESS)

    def module_load_from_memory(dev_handle: int, p_module: Any, module_size: int, flags: int) -> int:
        found = device(dev_handle)
        if flags != ModuleLoadFlags.DEFAULT:
            raise CudlaError(Status.ERROR_INVALID_PARAM)
        if found.module is not None:
            raise CudlaError(Status.ERROR_UNSUPPORTED_OPERATION)  # one loadable per device handle
        raw = ctypes.string_at(int(p_module), module_size) if isinstance(p_module, int) else bytes(p_module)
        if len(raw) != module_size:
            raise ValueError(f"buf must be a 1D contiguous buffer, of size {module_size}")
        parsed = loadable_part.parse_loadable(raw)
        if parsed is None:
            raise CudlaError(Status.ERROR_UMD)
        found.module = parsed
        found.session = onnxruntime.InferenceSession(bytes.fromhex(parsed["onnx"]),
                                                     providers=["CPUExecutionProvider"])
        handle = next(handles)
        state["modules"][handle] = found
        state["loaded_on"].append((parsed["dla_core"], found.index))
        return handle

    def module_of(h_module: int) -> _Device:
        found = state["modules"].get(int(h_module))
        if found is None or found.module is None:
            raise CudlaError(Status.ERROR_INVALID_DEVICE)  # "if the module is not loaded in any device"
        return found

    def module_get_attributes(h_module: int, attr_type: int) -> Any:
        loaded = module_of(h_module).module
        entries = {ModuleAttributeType.NUM_INPUT_TENSORS: loaded["inputs"],
                   ModuleAttributeType.NUM_OUTPUT_TENSORS: loaded["outputs"],
                   ModuleAttributeType.INPUT_TENSOR_DESCRIPTORS: loaded["inputs"],
                   ModuleAttributeType.OUTPUT_TENSOR_DESCRIPTORS: loaded["outputs"]}
        if attr_type not in entries:
            raise ValueError(f"Unknown attribute type: {attr_type}")
        if attr_type in (ModuleAttributeType.NUM_INPUT_TENSORS, ModuleAttributeType.NUM_OUTPUT_TENSORS):
            return len(entries[attr_type])
        return [descriptor(loadable_part.descriptor_fields(entry)) for entry in entries[attr_type]]

    def module_unload(h_module: int, flags: int) -> None:
        found = module_of(h_module)
        found.module = found.session = None
        del state["modules"][int(h_module)]

    def set_task_timeout_in_ms(dev_handle: int, timeout: int) -> None:
        found = device(dev_handle)
        if not 0 < int(timeout) <= 1_000_000:
            raise CudlaError(Status.ERROR_INVALID_PARAM)
        found.timeout_ms = int(timeout)
        state["timeouts_set"].append(int(timeout))

    def get_last_error(dev_handle: int) -> int:
        return int(device(dev_handle).last_status)

    def _pointer_array(address: int, count: int) -> list[int]:
        return [] if not count else list(np.frombuffer(ctypes.string_at(address, 8 * count), np.int64))

    def submit_task(dev_handle: int, ptr_to_tasks: Any, num_tasks: int, stream: int, flags: int) -> None:
        found = device(dev_handle)
        if not int(stream):
            raise CudlaError(Status.ERROR_INVALID_PARAM)  # hybrid mode: "must be ... the CUDA stream"
        if flags & ~int(SubmissionFlags.SKIP_LOCK_ACQUIRE):
            raise CudlaError(Status.ERROR_INVALID_PARAM)
        raw = ctypes.string_at(int(ptr_to_tasks), task_dtype.itemsize * int(num_tasks))
        for task in np.frombuffer(raw, task_dtype):
            if int(task["wait_events"]) or int(task["signal_events"]):
                raise CudlaError(Status.ERROR_UNSUPPORTED_OPERATION)  # no NvSci events in hybrid mode
            loaded = module_of(int(task["module_handle"]))
            if loaded is not found:
                raise CudlaError(Status.ERROR_INVALID_MODULE)
            ins = _pointer_array(int(task["input_tensor"]), int(task["num_input_tensors"]))
            outs = _pointer_array(int(task["output_tensor"]), int(task["num_output_tensors"]))
            if not ins or not outs:
                raise CudlaError(Status.ERROR_UNSUPPORTED_OPERATION)  # NULL tensors in hybrid mode
            if len(ins) != len(found.module["inputs"]) or len(outs) != len(found.module["outputs"]):
                raise CudlaError(Status.ERROR_INVALID_PARAM)
            if any(p not in found.registered for p in ins + outs):
                raise CudlaError(Status.ERROR_INVALID_ADDRESS)
            state["submissions"].append({"device": found.index, "stream": int(stream), "inputs": ins,
                                         "outputs": outs})
            found.running += 1
            # the op keeps the runtime (whose allocations it writes) alive until it has run
            result = runtime.double_enqueue(stream, "cudlaTask",
                                            lambda f=found, i=ins, o=outs, keep=runtime: _run(f, i, o))
            if result[0] != 0:
                found.running -= 1
                raise CudlaError(Status.ERROR_CUDA)

    def _run(found: _Device, ins: list[int], outs: list[int]) -> None:
        """The task on the DLA: wait out the knobs (up to the handle's timeout), then run the ONNX."""
        try:
            limit = found.timeout_ms / 1e3
            hang, started = state["hang"], time.monotonic()
            if isinstance(hang, dict):  # per DLA core: {index: threading.Event}
                hang = hang.get(found.index)
            if state["task_delay_s"]:
                time.sleep(min(state["task_delay_s"], limit))
            if hang is not None:
                hang.wait(max(0.0, limit - (time.monotonic() - started)))
            if time.monotonic() - started >= limit:
                found.last_status = Status.ERROR_DLA_ERR_ENGINE_TIMEOUT
                return
            if state["fail_next"] is not None:
                found.last_status, state["fail_next"] = Status(state["fail_next"]), None
                return
            loaded = found.module
            feeds = {}
            for entry, mapping in zip(loaded["inputs"], ins, strict=True):
                pointer, size = found.registered[mapping]
                feeds[entry["name"]] = loadable_part.to_nchw(ctypes.string_at(pointer, size), entry)
            values = found.session.run([e["name"] for e in loaded["outputs"]], feeds)
            for entry, mapping, value in zip(loaded["outputs"], outs, values, strict=True):
                pointer, size = found.registered[mapping]
                data = loadable_part.from_nchw(np.asarray(value, np.float32), entry)
                ctypes.memmove(pointer, data, min(size, len(data)))
            found.last_status = Status.SUCCESS
        finally:
            found.running -= 1

    for name, value in dict(locals()).items():
        if callable(value) and not name.startswith("_") and name not in ("device", "module_of"):
            setattr(module, name, value)
    for item in (AccessPermissionFlags, DevAttributeType, FenceType, Mode, ModuleAttributeType,
                 ModuleLoadFlags, SubmissionFlags, Status, CudlaError, check_status, Task,
                 ModuleTensorDescriptor, DevAttribute):
        setattr(module, item.__name__, item)
    module.task_dtype, module.dev_attribute_dtype = task_dtype, dev_attribute_dtype
    module.module_tensor_descriptor_dtype = module_tensor_descriptor_dtype
    module.double_state = state
    return module
