"""Part of THE SECOND SANCTIONED TEST DOUBLE (see cudla_double.py): the piece of `cuda.bindings.runtime`
that cuDLA's hybrid mode needs, over host memory and one thread per stream.

Followed from the real module of cuda-bindings 13.5.0 (its x86 wheel installs here; every call returns
cudaErrorInsufficientDriver without a GPU): the same function names and parameters (test_cudla_double.py
compares them), results as tuples `(cudaError_t, value)` or `(cudaError_t,)`, the same enum values, and the
CUDA semantics the engine relies on, from the CUDA Runtime API reference:
- cudaMalloc returns memory "suitably aligned for any kind of variable" (256 bytes here); cudaMallocHost
  page-locked host memory; a copy whose direction does not match its pointers fails
  (cudaErrorInvalidValue / cudaErrorInvalidMemcpyDirection), as does one past an allocation;
- work on a stream runs in order, asynchronously to the host: cudaMemcpyAsync and cudaLaunch... return at
  once, cudaEventQuery answers cudaErrorNotReady until the stream reached the event ("cudaSuccess ... if
  cudaEventRecord() has not been called on this event");
- cudaStreamDestroy of a busy stream returns at once, its work finishes first.
Every op a stream runs is recorded in `double_state["ops"]`, so the tests see what the engine enqueued.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import queue
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevicePointer = 17
    cudaErrorInvalidMemcpyDirection = 21
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorNotReady = 600


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class _Handle:
    """cudaStream_t / cudaEvent_t: an opaque pointer; int() gives its address, as in the binding."""

    def __init__(self, init_value: int = 0) -> None:
        self._value = int(init_value)

    def __int__(self) -> int:
        return self._value

    def getPtr(self) -> int:
        return self._value


class cudaStream_t(_Handle):
    pass


class cudaEvent_t(_Handle):
    pass


class _Stream:
    def __init__(self, ops: list[tuple[str, int]], handle: int) -> None:
        self.handle = handle
        self.work: queue.Queue[tuple[str, Callable[[], None]] | None] = queue.Queue()
        self.ops = ops
        self.thread = threading.Thread(target=self._loop, name=f"double stream {handle:#x}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            name, op = item
            self.ops.append((name, self.handle))
            op()
            self.work.task_done()


# The driver owns device and pinned memory until cudaFree/cudaFreeHost (or process exit), not the Python
# module that handed it out: work still queued on a stream (a copy after a task that hung past its test)
# writes into it after the test has dropped its double.
_DRIVER_MEMORY: dict[int, np.ndarray] = {}


def make_runtime(num_devices: int = 1) -> types.ModuleType:
    """A fresh `cuda.bindings.runtime` stand-in; its `double_state` records allocations, streams and ops."""
    module = types.ModuleType("cuda.bindings.runtime")
    handles = itertools.count(0x5100_0000)
    state: dict[str, Any] = {"device": None, "num_devices": num_devices, "allocations": {}, "streams": {},
                             "events": {}, "ops": [], "freed": 0}
    allocations: dict[int, tuple[str, np.ndarray]] = state["allocations"]

    def allocate(kind: str, size: int) -> tuple[cudaError_t, int]:
        if size <= 0:
            return cudaError_t.cudaErrorInvalidValue, 0
        memory = np.zeros(int(size) + 256, np.uint8)
        pointer = (memory.ctypes.data + 255) & ~255
        allocations[pointer] = (kind, memory[pointer - memory.ctypes.data:][:size])
        _DRIVER_MEMORY[pointer] = memory
        return cudaError_t.cudaSuccess, pointer

    def owner(pointer: int, count: int) -> str | None:
        """'device' / 'host' for a range inside one allocation, None for a pointer CUDA does not know."""
        for start, (kind, memory) in allocations.items():
            if start <= pointer and pointer + count <= start + memory.nbytes:
                return kind
        return None

    def stream_of(stream: Any) -> _Stream | None:
        return state["streams"].get(int(stream))

    def cudaSetDevice(device: int) -> tuple[cudaError_t]:
        if not 0 <= int(device) < num_devices:
            return (cudaError_t.cudaErrorInvalidDevice,)
        state["device"] = int(device)
        return (cudaError_t.cudaSuccess,)

    def cudaGetDeviceCount() -> tuple[cudaError_t, int]:
        return (cudaError_t.cudaSuccess, num_devices) if num_devices else (cudaError_t.cudaErrorNoDevice, 0)

    def cudaMalloc(size: int) -> tuple[cudaError_t, int]:
        return allocate("device", size)

    def cudaMallocHost(size: int) -> tuple[cudaError_t, int]:
        return allocate("host", size)

    def _free(pointer: Any, kind: str) -> tuple[cudaError_t]:
        entry = allocations.get(int(pointer))
        if entry is None or entry[0] != kind:
            return (cudaError_t.cudaErrorInvalidValue,)
        del allocations[int(pointer)]
        _DRIVER_MEMORY.pop(int(pointer), None)
        state["freed"] += 1
        return (cudaError_t.cudaSuccess,)

    def cudaFree(devPtr: Any) -> tuple[cudaError_t]:
        return _free(devPtr, "device")

    def cudaFreeHost(ptr: Any) -> tuple[cudaError_t]:
        return _free(ptr, "host")

    def cudaStreamCreateWithFlags(flags: int) -> tuple[cudaError_t, cudaStream_t | None]:
        handle = next(handles)
        state["streams"][handle] = _Stream(state["ops"], handle)
        return cudaError_t.cudaSuccess, cudaStream_t(handle)

    def cudaStreamDestroy(stream: Any) -> tuple[cudaError_t]:
        found = state["streams"].pop(int(stream), None)
        if found is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        found.work.put(None)  # its queued work still runs first
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(stream: Any) -> tuple[cudaError_t]:
        found = stream_of(stream)
        if found is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        found.work.join()
        return (cudaError_t.cudaSuccess,)

    def enqueue(stream: Any, name: str, op: Callable[[], None]) -> tuple[cudaError_t]:
        found = stream_of(stream)
        if found is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        found.work.put((name, op))
        return (cudaError_t.cudaSuccess,)

    def cudaMemcpyAsync(dst: Any, src: Any, count: int, kind: cudaMemcpyKind, stream: Any) -> tuple[cudaError_t]:  # noqa: E501
        dst, src, count = int(dst), int(src), int(count)
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            wanted = (owner(dst, count) == "device", owner(src, count) != "device")
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            wanted = (owner(dst, count) != "device", owner(src, count) == "device")
        else:
            return (cudaError_t.cudaErrorInvalidMemcpyDirection,)
        if not all(wanted):
            return (cudaError_t.cudaErrorInvalidValue,)
        return enqueue(stream, kind.name, lambda: ctypes.memmove(dst, src, count))

    def cudaMemsetAsync(devPtr: Any, value: int, count: int, stream: Any) -> tuple[cudaError_t]:
        pointer, count = int(devPtr), int(count)
        if owner(pointer, count) != "device":
            return (cudaError_t.cudaErrorInvalidValue,)
        return enqueue(stream, "cudaMemsetAsync", lambda: ctypes.memset(pointer, int(value), count))

    def cudaEventCreateWithFlags(flags: int) -> tuple[cudaError_t, cudaEvent_t]:
        handle = next(handles)
        done = threading.Event()
        done.set()  # never recorded: complete
        state["events"][handle] = done
        return cudaError_t.cudaSuccess, cudaEvent_t(handle)

    def cudaEventRecord(event: Any, stream: Any) -> tuple[cudaError_t]:
        done = state["events"].get(int(event))
        if done is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        done.clear()
        result = enqueue(stream, "cudaEventRecord", done.set)
        if result[0] != cudaError_t.cudaSuccess:
            done.set()
        return result

    def cudaEventQuery(event: Any) -> tuple[cudaError_t]:
        done = state["events"].get(int(event))
        if done is None:
            return (cudaError_t.cudaErrorInvalidResourceHandle,)
        return (cudaError_t.cudaSuccess if done.is_set() else cudaError_t.cudaErrorNotReady,)

    def cudaEventDestroy(event: Any) -> tuple[cudaError_t]:
        found = state["events"].pop(int(event), None)
        return (cudaError_t.cudaSuccess if found is not None else cudaError_t.cudaErrorInvalidResourceHandle,)

    def cudaGetErrorName(error: cudaError_t) -> tuple[cudaError_t, bytes]:
        return cudaError_t.cudaSuccess, cudaError_t(error).name.encode()

    exported = dict(locals())
    for name, value in exported.items():
        if name.startswith("cuda"):
            setattr(module, name, value)
    module.cudaError_t, module.cudaMemcpyKind = cudaError_t, cudaMemcpyKind
    module.cudaStream_t, module.cudaEvent_t = cudaStream_t, cudaEvent_t
    module.cudaStreamNonBlocking = 1  # driver_types.h: cudaStreamNonBlocking 0x01
    module.cudaEventDisableTiming = 2  # cudaEventDisableTiming 0x02
    module.double_state = state
    module.double_enqueue = enqueue  # how the cuDLA double puts a DLA task on a stream
    module.double_owner = owner
    return module
