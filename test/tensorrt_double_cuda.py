"""Part of THE ONE SANCTIONED TEST DOUBLE (see tensorrt_double.py): polygraphy.cuda backed by host memory.

TensorRT execution needs device memory that does not exist here. The copy semantics are polygraphy
0.53.6's (polygraphy/cuda/cuda.py, DeviceView._check_host_buffer, DeviceArray.copy_from/copy_to/resize/free):
- a dtype mismatch is only logged ("Host buffer type: ... does not match ... This may cause CUDA errors!"),
  the bytes are copied anyway;
- a non-contiguous host buffer raises; copy_from raises when the host buffer is larger than the device
  buffer and copies the host's bytes; copy_to raises when the host buffer is smaller and copies the
  device's bytes; copying zero bytes does nothing;
- nbytes = volume(shape) * itemsize; resize() reallocates (a new pointer) only when it grows past the
  allocation; free() leaves ptr 0 and shape ().
Errors are raised as polygraphy's own PolygraphyException, as G_LOGGER.critical does.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any

import numpy as np
from polygraphy.exception import PolygraphyException


class HostCuda:
    """Stand-in for the `polygraphy.cuda` module: Stream and DeviceArray classes bound to this instance."""

    _handles = itertools.count(0x7000)

    def __init__(self) -> None:
        self.streams: list[Any] = []
        self.copies: list[tuple[str, int]] = []  # (direction, stream ptr)
        self.errors: list[str] = []  # what polygraphy would have logged with G_LOGGER.error
        self.freed = 0
        cuda = self

        class Stream:
            def __init__(self) -> None:
                self.ptr = next(HostCuda._handles)
                self.synchronized = 0
                cuda.streams.append(self)

            def synchronize(self) -> None:
                self.synchronized += 1

            def free(self) -> None:
                cuda.freed += 1

        class DeviceArray:
            def __init__(self, shape: tuple[int, ...] | None = None, dtype: Any = None) -> None:
                self.dtype = np.dtype(np.float32 if dtype is None else dtype)
                self.itemsize = self.dtype.itemsize
                self.shape: tuple[int, ...] = ()
                self.allocated_nbytes = 0
                self._memory = np.zeros(0, np.uint8)
                self.ptr = 0
                self.resize(tuple(shape or ()))

            @property
            def nbytes(self) -> int:
                return int(np.prod(self.shape, dtype=np.int64)) * self.itemsize

            def resize(self, shape: tuple[int, ...]) -> DeviceArray:
                nbytes = int(np.prod(shape, dtype=np.int64)) * self.itemsize
                if nbytes > self.allocated_nbytes:
                    self._memory = np.zeros(nbytes, np.uint8)  # a fresh allocation: a new pointer
                    self.ptr = int(self._memory.ctypes.data)
                    self.allocated_nbytes = nbytes
                self.shape = tuple(shape)
                return self

            def _check(self, host: np.ndarray, copying_from: bool) -> None:
                if host.dtype != self.dtype:
                    cuda.errors.append(
                        f"Host buffer type: {host.dtype} does not match the type of this device "
                        f"buffer: {self.dtype}. This may cause CUDA errors!"
                    )
                if not host.flags.c_contiguous:
                    raise PolygraphyException("Provided host buffer is not contiguous in memory.")
                if copying_from and host.nbytes > self.nbytes:
                    raise PolygraphyException("Provided host buffer is larger than device buffer.")
                if not copying_from and host.nbytes < self.nbytes:
                    raise PolygraphyException("Provided host buffer is smaller than device buffer.")

            def copy_from(self, host: np.ndarray, stream: Any = None) -> DeviceArray:
                if not host.nbytes:
                    return self
                self._check(host, copying_from=True)
                cuda.copies.append(("to_device", stream.ptr if stream else 0))
                ctypes.memmove(self.ptr, host.ctypes.data, host.nbytes)
                return self

            def copy_to(self, host: np.ndarray, stream: Any = None) -> np.ndarray:
                if not self.nbytes:
                    return host
                self._check(host, copying_from=False)
                cuda.copies.append(("to_host", stream.ptr if stream else 0))
                ctypes.memmove(host.ctypes.data, self.ptr, self.nbytes)
                return host

            def free(self) -> None:
                cuda.freed += 1
                self._memory = np.zeros(0, np.uint8)
                self.shape, self.allocated_nbytes, self.ptr = (), 0, 0

        self.Stream = Stream
        self.DeviceArray = DeviceArray
