"""DLA-native tensor layouts: numpy views over a loadable's I/O buffers, and conversion from and to NCHW.

A DLA standalone loadable reads and writes its I/O in the formats it was built with; cuDLA describes each
tensor with a `cudlaModuleTensorDescriptor`. What the fields mean, and where that comes from:

- cudla.h (CUDA 12/13): `name, size, n, c, h, w, dataFormat, dataType, dataCategory, pixelFormat,
  pixelMapping, stride[8]`; CUDLA_DATA_FORMAT_UNKNOWN 0, _NCHW 1, _NHWC 2, _NCxHWx 3; CUDLA_DATA_TYPE_UNKNOWN
  0, _FLOAT 1, _HALF 2, _INT16 3, _INT8 4, _UINT8 5, _UINT16 6.
- the strides: NVDLA's loadable writer (nvdla/sw, `engine_ast::Graph::createTensorDescListEntry`) fills
  stride[0] = bytes per element, stride[1] = line stride (bytes from one row to the next), stride[2] =
  surface stride (bytes from one channel group to the next), stride[3] = plane stride. That TensorRT's DLA
  compiler on Orin fills them the same way is unverified: the layout is checked against `size`, and a zero
  stride falls back to the layout TensorRT documents.
- the layouts (TensorRT NvInferRuntimeBase.h, `TensorFormat`): kDLA_LINEAR is [N][C][H][roundUp(W,
  64/elementSize)] (NCHW, rows padded to 64 bytes); kCHW16 / kCHW32 are [N][(C+x-1)/x][H][W][x], the DLA's
  native feature format for FP16 (x = 16) and INT8 (x = 32), i.e. 32-byte channel groups; kDLA_HWC4 is
  [N][H][roundUp(W, 64/C'/elementSize)][C'] with C' = 1 for C = 1 and 4 for C = 3 or 4 (input only).

INT8 tensors carry real values divided by their scale (TensorRT's symmetric INT8, [-128, 127], rounded to
nearest even here; Orin's DLA rounds ties away from zero). Padding (channels past C, bytes past W) is
zeroed once when the buffer is made and never written again, so packing a frame touches only real data.
The float32 <-> float16 casts go through OpenCV where it is installed (`cv2.multiply(..., dtype=CV_16F)`,
the CPU's F16C/NEON conversion, bit-identical to numpy's cast and about 4x faster here), and so does the
interleaving of DLA_HWC4 (`cv2.merge`); the other layouts are numpy strided copies
(benchmarks/bench_dla_formats.py measures them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT_NCHW, FORMAT_NHWC, FORMAT_NCXHWX = 1, 2, 3  # CUDLA_DATA_FORMAT_*
# CUDLA_DATA_TYPE_* -> numpy
DLA_DTYPES = {1: np.float32, 2: np.float16, 3: np.int16, 4: np.int8, 5: np.uint8, 6: np.uint16}
ATOM_BYTES = 32  # a DLA feature channel group: 16 FP16 or 32 INT8 channels (kCHW16 / kCHW32)
LINE_ALIGN = 64  # kDLA_LINEAR and kDLA_HWC4 rows are padded to 64 bytes on Orin


try:
    import cv2
except ImportError:  # numpy's cast does the same, slower
    cv2 = None


def _cast(array: np.ndarray, dtype: Any) -> np.ndarray:
    """`array` (C-contiguous float32 or float16) as a new C-contiguous array of the other float type."""
    dtype = np.dtype(dtype)
    if cv2 is not None and array.ndim >= 2 and array.size and array.flags.c_contiguous:
        code = cv2.CV_16F if dtype == np.float16 else cv2.CV_32F
        return cv2.multiply(array.reshape(-1, array.shape[-1]), 1.0, dtype=code).reshape(array.shape)
    return array.astype(dtype)


class LayoutError(ValueError):
    """A tensor descriptor that this module cannot map onto NCHW (unknown format, strides past `size`)."""


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class DlaLayout:
    """Where element (n, c, h, w) of one tensor lives in its DLA buffer."""

    name: str
    kind: str  # "linear" (DLA_LINEAR), "feature" (CHW16/CHW32), "image" (DLA_HWC4)
    dtype: np.dtype
    n: int
    c: int
    h: int
    w: int
    size: int  # bytes of the buffer
    line_stride: int
    surface_stride: int  # feature: one channel group; linear: one channel; image: unused (0)
    batch_stride: int
    group: int  # channels per vector: x for feature, C' for image, 1 for linear

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.n, self.c, self.h, self.w

    @property
    def format_name(self) -> str:
        if self.kind == "feature":
            return f"CHW{self.group}"
        return "DLA_HWC4" if self.kind == "image" else "DLA_LINEAR"

    def native_view(self, buffer: np.ndarray) -> np.ndarray:
        """The buffer seen in its own layout: (N, C, H, W) linear, (N, G, H, W, x) feature, (N, H, W, C')
        image. Writable views over `buffer` (uint8, at least `size` bytes); no copy."""
        if buffer.dtype != np.uint8 or buffer.nbytes < self.size:
            raise LayoutError(f"'{self.name}': buffer of {buffer.nbytes} bytes for a {self.size}-byte tensor")
        item = self.dtype.itemsize
        if self.kind == "linear":
            shape = (self.n, self.c, self.h, self.w)
            strides = (self.batch_stride, self.surface_stride, self.line_stride, item)
        elif self.kind == "feature":
            shape = (self.n, -(-self.c // self.group), self.h, self.w, self.group)
            strides = (self.batch_stride, self.surface_stride, self.line_stride, self.group * item, item)
        else:
            shape = (self.n, self.h, self.w, self.group)
            strides = (self.batch_stride, self.line_stride, self.group * item, item)
        return np.ndarray(shape, self.dtype, buffer=buffer, strides=strides)

    def describe(self) -> dict[str, Any]:
        return {"format": self.format_name, "dtype": self.dtype.name, "shape": list(self.shape),
                "bytes": self.size, "line_stride": self.line_stride, "surface_stride": self.surface_stride}


def layout_from_descriptor(descriptor: Any) -> DlaLayout:
    """A `cudlaModuleTensorDescriptor` (or anything with its fields) as a DlaLayout; else LayoutError."""
    name = str(descriptor.name)
    data_type, data_format = int(descriptor.data_type), int(descriptor.data_format)
    if data_type not in DLA_DTYPES:
        raise LayoutError(f"'{name}': unknown cuDLA data type {data_type}")
    dtype = np.dtype(DLA_DTYPES[data_type])
    n, c, h, w = (int(descriptor.n), int(descriptor.c), int(descriptor.h), int(descriptor.w))
    size = int(descriptor.size_)
    if min(n, c, h, w) < 1:
        raise LayoutError(f"'{name}': dimensions n={n} c={c} h={h} w={w}")
    stride = [int(s) for s in descriptor.stride]
    item = dtype.itemsize
    if data_format == FORMAT_NCHW:
        kind, group = "linear", 1
        line = stride[1] or _round_up(w * item, LINE_ALIGN)
        surface = stride[2] or h * line
        needed_line, needed_surface, per_batch = w * item, h * line, c * surface
    elif data_format == FORMAT_NCXHWX:
        kind, group = "feature", ATOM_BYTES // item
        line = stride[1] or w * group * item
        surface = stride[2] or h * line
        needed_line, needed_surface = w * group * item, h * line
        per_batch = -(-c // group) * surface
    elif data_format == FORMAT_NHWC:
        if c not in (1, 3, 4):
            raise LayoutError(f"'{name}': an NHWC (DLA_HWC4) tensor has 1, 3 or 4 channels, not {c}")
        kind, group = "image", 1 if c == 1 else 4
        line = stride[1] or _round_up(w * group * item, LINE_ALIGN)
        surface, needed_line, needed_surface = 0, w * group * item, 0
        per_batch = h * line
    else:
        raise LayoutError(f"'{name}': unknown cuDLA data format {data_format}")
    if line < needed_line or surface < needed_surface:
        raise LayoutError(f"'{name}': strides line={line} surface={surface} too small for w={w}, h={h}")
    batch = size // n
    if batch < per_batch:
        raise LayoutError(f"'{name}': {size} bytes cannot hold {n} x {per_batch}-byte {kind} images")
    return DlaLayout(name, kind, dtype, n, c, h, w, size, line, surface, batch, group)


def documented_layout(name: str, shape: tuple[int, ...], dtype: Any, fmt: str) -> DlaLayout:
    """The layout TensorRT's header gives `fmt` (DLA_LINEAR, DLA_HWC4, CHW16, CHW32) for an NCHW tensor: what
    a loadable's descriptor says when it adds no padding of its own (benchmarks, tests)."""
    dtype = np.dtype(dtype)
    n, c, h, w = shape
    item = dtype.itemsize
    code = {"DLA_LINEAR": FORMAT_NCHW, "DLA_HWC4": FORMAT_NHWC}.get(fmt, FORMAT_NCXHWX)
    if fmt == "DLA_LINEAR":
        size = n * c * h * _round_up(w * item, LINE_ALIGN)
    elif fmt == "DLA_HWC4":
        size = n * h * _round_up(w * (1 if c == 1 else 4) * item, LINE_ALIGN)
    else:
        size = n * -(-c // (ATOM_BYTES // item)) * h * w * ATOM_BYTES
    types = {np.dtype(v): k for k, v in DLA_DTYPES.items()}

    class Fields:  # the descriptor fields layout_from_descriptor reads
        pass

    fields = Fields()
    vars(fields).update(name=name, data_type=types[dtype], data_format=code, n=n, c=c, h=h, w=w, size_=size,
                        stride=[0] * 8)
    return layout_from_descriptor(fields)


class Converter:
    """One I/O tensor: its layout, the buffer it lives in, and NCHW <-> native conversion with numpy."""

    def __init__(self, layout: DlaLayout, buffer: np.ndarray, scale: float | None = None,
                 host_dtype: Any = np.float32) -> None:
        if layout.dtype == np.int8 and not scale:
            raise LayoutError(f"'{layout.name}' is INT8 on the DLA but no scale is known for it")
        if layout.dtype not in (np.float16, np.int8, np.float32):
            raise LayoutError(f"'{layout.name}': {layout.dtype.name} I/O is not converted here")
        self.layout = layout
        self.scale = float(scale) if scale else None
        self.host_dtype = np.dtype(host_dtype)
        buffer[: layout.size] = 0  # padding stays zero: the DLA never writes an input buffer
        self._native = layout.native_view(buffer)

    def pack(self, array: np.ndarray) -> None:
        """Write one NCHW host array into the buffer in the DLA's format (and INT8 scale)."""
        layout = self.layout
        if array.shape != layout.shape:
            raise LayoutError(f"'{layout.name}': array {array.shape}, the loadable expects {layout.shape}")
        if self.scale is not None:
            array = np.clip(np.rint(array * np.float32(1.0 / self.scale)), -128, 127)
        elif layout.dtype == np.float16 and array.dtype == np.float32:
            array = _cast(np.ascontiguousarray(array), np.float16)
        native = self._native
        if layout.kind == "linear":
            native[...] = array
        elif layout.kind == "image":
            self._image(array, native)
        else:
            self._feature(array, native, to_native=True)

    def _image(self, array: np.ndarray, native: np.ndarray) -> None:
        """NCHW -> (N, H, W, C'): OpenCV interleaves the planes (cv2.merge, ~10x numpy's strided scatter)."""
        layout = self.layout
        if cv2 is None:
            native[..., : layout.c] = array.transpose(0, 2, 3, 1)
            return
        planes = np.ascontiguousarray(array, dtype=layout.dtype)
        padding = [np.zeros((layout.h, layout.w), layout.dtype)] * (layout.group - layout.c)
        for index in range(layout.n):
            native[index] = cv2.merge([*planes[index], *padding]).reshape(native.shape[1:])

    def unpack(self) -> np.ndarray:
        """The buffer as a new NCHW host array of `host_dtype` (INT8 scaled back to real values)."""
        layout = self.layout
        half = layout.dtype == np.float16 and self.host_dtype == np.float32
        out = np.empty(layout.shape, np.float16 if half else self.host_dtype)
        native = self._native
        if layout.kind == "linear":
            out[...] = native
        elif layout.kind == "image":
            out.transpose(0, 2, 3, 1)[...] = native[..., : layout.c]
        else:
            self._feature(out, native, to_native=False)
        if half:
            return _cast(out, np.float32)
        if self.scale is not None:
            out *= self.host_dtype.type(self.scale)
        return out

    def _feature(self, nchw: np.ndarray, native: np.ndarray, to_native: bool) -> None:
        """Copy between NCHW and (N, G, H, W, x): whole groups in one strided pass, a partial last apart."""
        n, c, h, w = self.layout.shape
        x = self.layout.group
        full = c // x
        parts: Sequence[tuple[np.ndarray, np.ndarray]] = []
        if full:
            s0, s1, s2, s3 = nchw.strides  # (N, C, H, W) -> (N, G, x, H, W) as a view, never a copy
            grouped = np.lib.stride_tricks.as_strided(
                nchw, (n, full, x, h, w), (s0, s1 * x, s1, s2, s3), writeable=not to_native
            ).transpose(0, 1, 3, 4, 2)
            parts = [(grouped, native[:, :full])]
        if c % x:
            tail = nchw[:, full * x:].transpose(0, 2, 3, 1)
            parts = [*parts, (tail, native[:, full, :, :, : c % x])]
        for host, dla in parts:
            if to_native:
                dla[...] = host
            else:
                host[...] = dla
