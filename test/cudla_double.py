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
Knobs in `double_state`: `task_delay_s`, `hang` (a threading.Event the task waits on, or {core index:
Event}), `fail_next` (a Status the next task ends with).
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import time
import types
from typing import Any

import numpy as np
import onnxruntime
import tensorrt_double_loadable as loadable_part


class AccessPermissionFlags(enum.IntEnum):
    READ_WRITE_PERM = 0
    READ_ONLY_PERM = 1
    TASK_STATISTICS = 2


class DevAttributeType(enum.IntEnum):
    UNIFIED_ADDRESSING = 0
    DEVICE_VERSION = 1


class FenceType(enum.IntEnum):
    FENCE = 1
    FENCE_SOF = 2


class Mode(enum.IntEnum):
    CUDA_DLA = 0
    STANDALONE = 1


class ModuleAttributeType(enum.IntEnum):
    NUM_INPUT_TENSORS = 0
    NUM_OUTPUT_TENSORS = 1
    INPUT_TENSOR_DESCRIPTORS = 2
    OUTPUT_TENSOR_DESCRIPTORS = 3
    NUM_OUTPUT_TASK_STATISTICS = 4
    OUTPUT_TASK_STATISTICS_DESCRIPTORS = 5


class ModuleLoadFlags(enum.IntEnum):
    DEFAULT = 0
    ENABLE_FAULT_DIAGNOSTICS = 1


class SubmissionFlags(enum.IntEnum):
    NOOP = 1
    SKIP_LOCK_ACQUIRE = 2
    DIAGNOSTICS_TASK = 4


class Status(enum.IntEnum):
    SUCCESS = 0
    ERROR_INVALID_PARAM = 1
    ERROR_OUT_OF_RESOURCES = 2
    ERROR_CREATION_FAILED = 3
    ERROR_INVALID_ADDRESS = 4
    ERROR_OS = 5
    ERROR_CUDA = 6
    ERROR_UMD = 7
    ERROR_INVALID_DEVICE = 8
    ERROR_INVALID_ATTRIBUTE = 9
    ERROR_INCOMPATIBLE_DLA_SW_VERSION = 10
    ERROR_MEMORY_REGISTERED = 11
    ERROR_INVALID_MODULE = 12
    ERROR_UNSUPPORTED_OPERATION = 13
    ERROR_NV_SCI = 14
    ERROR_DRIVER_NOT_FOUND = 15
    ERROR_DLA_ERR_INVALID_INPUT = 0x40000001
    ERROR_DLA_ERR_INVALID_PRE_ACTION = 0x40000002
    ERROR_DLA_ERR_NO_MEM = 0x40000003
    ERROR_DLA_ERR_PROCESSOR_BUSY = 0x40000004
    ERROR_DLA_ERR_TASK_STATUS_MISMATCH = 0x40000005
    ERROR_DLA_ERR_ENGINE_TIMEOUT = 0x40000006
    ERROR_DLA_ERR_DATA_MISMATCH = 0x40000007
    ERROR_UNKNOWN = 0x7FFFFFFF


class CudlaError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
        found = Status(status)
        super().__init__(f"{found.name} ({found.value})")


def check_status(status: int) -> None:
    if status != 0:
        raise CudlaError(status)


# -- structs: the binding's dtypes (offsets of cudla.h's structs) and classes over them ---------------------

task_dtype = np.dtype([("module_handle", "<i8"), ("output_tensor", "<i8"), ("num_output_tensors", "<u4"),
                       ("num_input_tensors", "<u4"), ("input_tensor", "<i8"), ("wait_events", "<i8"),
                       ("signal_events", "<i8")])
module_tensor_descriptor_dtype = np.dtype({
    "names": ["name", "size_", "n", "c", "h", "w", "data_format", "data_type", "data_category",
              "pixel_format", "pixel_mapping", "stride"],
    "formats": [("i1", (81,)), "<u8", "<u8", "<u8", "<u8", "<u8", "u1", "u1", "u1", "u1", "u1",
                ("<u4", (8,))],
    "offsets": [0, 88, 96, 104, 112, 120, 128, 129, 130, 131, 132, 136], "itemsize": 168})
dev_attribute_dtype = np.dtype({"names": ["unified_addressing_supported", "device_version"],
                                "formats": ["u1", "<u4"], "offsets": [0, 0], "itemsize": 4})


class _Struct:
    """One struct in a one-element numpy record; `ptr` is its address, as the binding's `ptr`."""

    _dtype: np.dtype

    def __init__(self) -> None:
        self._data = np.zeros(1, self._dtype)
        self._readonly = False
        self._refs: dict[str, Any] = {}

    @property
    def ptr(self) -> int:
        return int(self._data.ctypes.data)

    def _set(self, field: str, value: Any) -> None:
        if self._readonly:
            raise ValueError(f"This {type(self).__name__} instance is read-only")
        self._data[field] = value

    @classmethod
    def from_data(cls, data: np.ndarray) -> Any:
        if not isinstance(data, np.ndarray):
            raise TypeError("data argument must be a NumPy ndarray")
        if data.size != 1 or data.dtype != cls._dtype:
            raise ValueError(f"data array must be a single element of the {cls.__name__} dtype")
        obj = cls.__new__(cls)
        obj._data, obj._readonly, obj._refs = data.reshape(1), not data.flags.writeable, {}
        return obj

    @classmethod
    def from_buffer(cls, buffer: Any) -> Any:
        return cls.from_data(np.frombuffer(buffer, cls._dtype, count=1))

    @classmethod
    def from_ptr(cls, ptr: int, readonly: bool = False, owner: Any = None) -> Any:
        if ptr == 0:
            raise ValueError("ptr must not be null (0)")
        raw = ctypes.string_at(ptr, cls._dtype.itemsize)
        obj = cls.from_data(np.frombuffer(bytearray(raw), cls._dtype).copy())
        obj._readonly = readonly
        return obj


def _field(name: str, doc: str = "int: ") -> property:
    return property(lambda self: self._data[name][0].item(), lambda self, value: self._set(name, value),
                    doc=doc)


class Task(_Struct):
    _dtype = task_dtype
    module_handle = _field("module_handle")
    wait_events = _field("wait_events")
    signal_events = _field("signal_events")

    def _pointers(self, field: str, count: str, values: Any) -> None:
        array = np.asarray(list(values), np.int64)
        self._set(count, len(array))
        self._refs[field] = array  # the binding keeps its pointer array alive the same way
        self._set(field, int(array.ctypes.data) if len(array) else 0)

    input_tensor = property(lambda self: self._refs.get("input_tensor", np.zeros(0, np.int64)),
                            lambda self, v: self._pointers("input_tensor", "num_input_tensors", v))
    output_tensor = property(lambda self: self._refs.get("output_tensor", np.zeros(0, np.int64)),
                             lambda self, v: self._pointers("output_tensor", "num_output_tensors", v))


class ModuleTensorDescriptor(_Struct):
    _dtype = module_tensor_descriptor_dtype
    size_, n, c, h, w = (_field(k) for k in ("size_", "n", "c", "h", "w"))
    data_format, data_type, data_category = (_field(k) for k in ("data_format", "data_type", "data_category"))
    pixel_format, pixel_mapping = _field("pixel_format"), _field("pixel_mapping")

    @property
    def name(self) -> str:
        return bytes(self._data["name"][0].view(np.uint8)).split(b"\0", 1)[0].decode()

    @name.setter
    def name(self, value: str) -> None:
        raw = np.zeros(81, np.int8)
        raw[: min(80, len(value))] = np.frombuffer(value.encode()[:80], np.int8)
        self._set("name", raw)

    @property
    def stride(self) -> np.ndarray:
        return self._data["stride"][0]

    @stride.setter
    def stride(self, value: Any) -> None:
        self._set("stride", np.asarray(value, np.uint32))


class DevAttribute(_Struct):
    _dtype = dev_attribute_dtype
    unified_addressing_supported = _field("unified_addressing_supported")
    device_version = _field("device_version")


def _descriptor(fields: dict[str, Any]) -> ModuleTensorDescriptor:
    descriptor = ModuleTensorDescriptor()
    for key, value in fields.items():
        setattr(descriptor, "size_" if key == "size" else key, value)
    descriptor._readonly = True  # module_get_attributes returns them read-only (from_ptr readonly=True)
    return descriptor


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
        return [_descriptor(loadable_part.descriptor_fields(entry)) for entry in entries[attr_type]]

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
