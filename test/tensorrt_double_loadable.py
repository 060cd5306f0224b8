"""Part of THE ONE SANCTIONED TEST DOUBLE (see tensorrt_double.py): DLA standalone loadables.

`EngineCapability.DLA_STANDALONE` builds "a DLA loadable instead of a TensorRT engine ... used with the cuDLA
API" (TensorRT docs, "DLA Standalone Mode"). The rules the double enforces, each with its source:
- "This flow supports only DeviceType::kDLA" (NvInferRuntime.h, EngineCapability::kDLA_STANDALONE);
- "DLA standalone mode disallows reformatting; therefore, BuilderFlag::kDIRECT_IO needs to be set", and
  "Set the allowed formats for I/O tensors to one or more of those that are DLA-supported" (same page);
- no GPU fallback: trtexec's `--buildDLAStandalone` disallows `--allowGPUFallback` (trtexec help), and a
  layer DLA cannot run fails the build as without GPU_FALLBACK (tensorrt_double_build.py);
- DLA-supported I/O formats ("I/O Formats on DLA"): inputs kDLA_LINEAR (FP16, INT8), kDLA_HWC4 (FP16, INT8;
  C of 1, 3 or 4), kCHW16 (FP16), kCHW32 (INT8); outputs kDLA_LINEAR, kCHW16 (FP16), kCHW32 (INT8);
- an INT8 I/O tensor needs its dynamic range (from the calibrator / cache), as every INT8 tensor does.

The real loadable is an opaque NVDLA binary. The double's is its magic, then JSON: the ONNX, the core it was
built for, and each I/O tensor's name, NCHW shape, DLA data type, TensorRT format and INT8 scale. The cuDLA
double (cudla_double.py) turns those into cudlaModuleTensorDescriptor fields with `descriptor_fields`,
following the array shapes TensorRT's header gives each format (not the strides the backend reads), and
executes the ONNX in onnxruntime, converting I/O with `to_nchw` / `from_nchw` written from those shapes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from tensorrt_double_types import DataType, DeviceType, Severity, TensorFormat

LOADABLE_MAGIC = b"DLA-DOUBLE-LOADABLE\n"
INPUT_FORMATS = {
    DataType.HALF: (TensorFormat.DLA_LINEAR, TensorFormat.DLA_HWC4, TensorFormat.CHW16),
    DataType.INT8: (TensorFormat.DLA_LINEAR, TensorFormat.DLA_HWC4, TensorFormat.CHW32),
}
OUTPUT_FORMATS = {
    DataType.HALF: (TensorFormat.DLA_LINEAR, TensorFormat.CHW16),
    DataType.INT8: (TensorFormat.DLA_LINEAR, TensorFormat.CHW32),
}
CUDLA_TYPE = {DataType.HALF: 2, DataType.INT8: 4}  # cudla.h CUDLA_DATA_TYPE_HALF 2, _INT8 4
NUMPY_TYPE = {DataType.HALF: np.float16, DataType.INT8: np.int8}


def check_config(config: Any, flags: set[str]) -> str | None:
    """Why this builder configuration cannot make a DLA standalone loadable (None: it can)."""
    if config.default_device_type != DeviceType.DLA:
        return "EngineCapability::kDLA_STANDALONE supports only DeviceType::kDLA"
    if "GPU_FALLBACK" in flags:
        return "DLA standalone loadables cannot fall back to the GPU: GPU_FALLBACK must not be set"
    if "DIRECT_IO" not in flags:
        return "DLA standalone mode disallows reformatting; BuilderFlag::kDIRECT_IO needs to be set"
    return None


def _format(tensor: Any, is_input: bool) -> TensorFormat | str:
    """The one DLA-native format the allowed-formats mask selects, or why there is none."""
    table = INPUT_FORMATS if is_input else OUTPUT_FORMATS
    if tensor.dtype not in table:
        return f"I/O tensor '{tensor.name}' is {tensor.dtype.name}: DLA standalone I/O is FP16 or INT8"
    allowed = [fmt for fmt in TensorFormat if tensor.allowed_formats & (1 << int(fmt))]
    native = [fmt for fmt in allowed if fmt in table[tensor.dtype]]
    if len(allowed) != len(native) or not native:
        return (f"I/O tensor '{tensor.name}' allows {[f.name for f in allowed]}: set DLA-supported formats "
                f"only ({[f.name for f in table[tensor.dtype]]} for {tensor.dtype.name})")
    if native[0] == TensorFormat.DLA_HWC4 and (len(tensor.shape) != 4 or tensor.shape[1] not in (1, 3, 4)):
        return f"kDLA_HWC4 takes C of 1, 3 or 4; '{tensor.name}' has shape {tuple(tensor.shape)}"
    return native[0]


def build_loadable(network: Any, config: Any, scales: dict[str, float], emit: Any) -> bytes | None:
    """The loadable bytes, or None after logging the error as TensorRT does."""
    entries: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for key, tensors, is_input in (("inputs", network._inputs, True), ("outputs", network._outputs, False)):
        for tensor in tensors:
            fmt = _format(tensor, is_input)
            if isinstance(fmt, str):
                emit(Severity.ERROR, fmt)
                return None
            if len(tensor.shape) != 4:
                emit(Severity.ERROR, f"DLA I/O tensor '{tensor.name}' must be 4-D, got {tuple(tensor.shape)}")
                return None
            scale = scales.get(tensor.name)
            if tensor.dtype == DataType.INT8 and not scale:
                emit(Severity.ERROR, f"INT8 I/O tensor '{tensor.name}' has no dynamic range (calibration)")
                return None
            entries[key].append({"name": tensor.name, "shape": [int(d) for d in tensor.shape],
                                 "dtype": tensor.dtype.name, "format": fmt.name,
                                 "scale": scale if tensor.dtype == DataType.INT8 else None})
    body = {"onnx": network.onnx_bytes.hex(), "dla_core": config.DLA_core, **entries}
    return LOADABLE_MAGIC + json.dumps(body).encode()


def parse_loadable(data: bytes) -> dict[str, Any] | None:
    if not data.startswith(LOADABLE_MAGIC):
        return None
    try:
        return json.loads(data[len(LOADABLE_MAGIC):])
    except ValueError:
        return None


# -- the layouts, as TensorRT's header gives them (NvInferRuntimeBase.h, enum class TensorFormat) ----------


def array_shape(shape: list[int], dtype: str, fmt: str) -> tuple[int, ...]:
    """The C array each format is "equivalent to": kDLA_LINEAR [N][C][H][roundUp(W, 64/elementSize)],
    kDLA_HWC4 [N][H][roundUp(W, 64/C'/elementSize)][C'], kCHW16 / kCHW32 [N][(C+x-1)/x][H][W][x]."""
    n, c, h, w = shape
    item = np.dtype(NUMPY_TYPE[DataType[dtype]]).itemsize
    if fmt == "DLA_LINEAR":
        return n, c, h, -(-w // (64 // item)) * (64 // item)
    if fmt == "DLA_HWC4":
        c_prime = 1 if c == 1 else 4
        per_row = 64 // c_prime // item
        return n, h, -(-w // per_row) * per_row, c_prime
    x = 16 if fmt == "CHW16" else 32
    return n, -(-c // x), h, w, x


def descriptor_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """cudlaModuleTensorDescriptor fields for one I/O entry (cudla.h; strides as NVDLA's loadable writer
    fills them: [0] bytes per element, [1] line stride, [2] surface stride)."""
    shape, fmt = entry["shape"], entry["format"]
    item = np.dtype(NUMPY_TYPE[DataType[entry["dtype"]]]).itemsize
    dims = array_shape(shape, entry["dtype"], fmt)
    size = int(np.prod(dims)) * item
    if fmt == "DLA_LINEAR":
        data_format, line = 1, dims[3] * item
        surface = dims[2] * line
    elif fmt == "DLA_HWC4":
        data_format, line, surface = 2, dims[2] * dims[3] * item, 0
    else:
        data_format, line = 3, dims[3] * dims[4] * item
        surface = dims[2] * line
    n, c, h, w = shape
    return {"name": entry["name"], "size": size, "n": n, "c": c, "h": h, "w": w,
            "data_format": data_format, "data_type": CUDLA_TYPE[DataType[entry["dtype"]]],
            "data_category": 0 if fmt == "DLA_HWC4" else 2, "stride": [item, line, surface, 0, 0, 0, 0, 0]}


def to_nchw(raw: bytes, entry: dict[str, Any]) -> np.ndarray:
    """Read a DLA-format buffer as real NCHW float32 values (INT8 times its scale)."""
    dtype = NUMPY_TYPE[DataType[entry["dtype"]]]
    dims = array_shape(entry["shape"], entry["dtype"], entry["format"])
    native = np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims))).reshape(dims)
    n, c, h, w = entry["shape"]
    if entry["format"] == "DLA_LINEAR":
        nchw = native[..., :w]
    elif entry["format"] == "DLA_HWC4":
        nchw = native[:, :, :w, :c].transpose(0, 3, 1, 2)
    else:
        nchw = native.transpose(0, 1, 4, 2, 3).reshape(n, dims[1] * dims[4], h, w)[:, :c]
    values = nchw.astype(np.float32)
    return values * np.float32(entry["scale"]) if entry["scale"] else values


def from_nchw(values: np.ndarray, entry: dict[str, Any]) -> bytes:
    """Real NCHW values as the bytes of a DLA-format buffer (padding zero)."""
    dtype = NUMPY_TYPE[DataType[entry["dtype"]]]
    dims = array_shape(entry["shape"], entry["dtype"], entry["format"])
    if entry["scale"]:
        values = np.clip(np.rint(values / np.float32(entry["scale"])), -128, 127)
    values = values.astype(dtype)
    n, c, h, w = entry["shape"]
    native = np.zeros(dims, dtype)
    if entry["format"] == "DLA_LINEAR":
        native[..., :w] = values
    elif entry["format"] == "DLA_HWC4":
        native[:, :, :w, :c] = values.transpose(0, 2, 3, 1)
    else:
        padded = np.zeros((n, dims[1] * dims[4], h, w), dtype)
        padded[:, :c] = values
        native[...] = padded.reshape(n, dims[1], dims[4], h, w).transpose(0, 1, 3, 4, 2)
    return native.tobytes()


def cache_scales(text: str) -> dict[str, float]:
    """`name: <float32 hex>` lines of a calibration cache (after its TRT-...-EntropyCalibration2 header)."""
    scales = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.rpartition(":")
        try:
            scales[name.strip()] = float(np.uint32(int(value.strip(), 16)).view(np.float32))
        except ValueError:
            continue
    return scales
