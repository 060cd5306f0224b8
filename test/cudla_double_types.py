"""Part of THE SECOND SANCTIONED TEST DOUBLE (see cudla_double.py): the enums, the error and the structs of
`cuda.bindings.cudla` 13.5.0, with the binding's names, values, dtypes (the offsets of cudla.h's structs)
and properties (test_cudla_double.py compares them with the real module)."""

from __future__ import annotations

import ctypes
import enum
from typing import Any

import numpy as np


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


def descriptor(fields: dict[str, Any]) -> ModuleTensorDescriptor:
    descriptor = ModuleTensorDescriptor()
    for key, value in fields.items():
        setattr(descriptor, "size_" if key == "size" else key, value)
    descriptor._readonly = True  # module_get_attributes returns them read-only (from_ptr readonly=True)
    return descriptor
