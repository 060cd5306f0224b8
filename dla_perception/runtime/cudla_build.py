"""Building a DLA standalone loadable (for cuDLA) with TensorRT: what differs from a TensorRT DLA plan.

TensorRT's "DLA Standalone Mode" (10.x docs): `default_device_type = DLA`, `engine_capability =
EngineCapability.DLA_STANDALONE`, precision as for any DLA build, `BuilderFlag.DIRECT_IO` ("DLA standalone
mode disallows reformatting"), and DLA-supported formats on every I/O tensor; then
`build_serialized_network` returns the loadable instead of a plan. No GPU fallback exists in a loadable
(trtexec's `--buildDLAStandalone` disallows `--allowGPUFallback`), so a model with a layer DLA cannot run
is refused before the build with dla-check's report of the offending layers.

I/O formats chosen ("I/O Formats on DLA": inputs kDLA_LINEAR/kDLA_HWC4/kCHW16 (FP16)/kCHW32 (INT8), outputs
kDLA_LINEAR/kCHW16/kCHW32): 3- or 4-channel inputs take kDLA_HWC4 (the DLA's image input, as NVIDIA's
cuDLA YOLOv5 sample feeds `int8:dla_hwc4`), other tensors the native feature format, kCHW16 in FP16 and
kCHW32 in INT8. A tensor is INT8 only when the build is INT8 and its scale is known before the build (Q/DQ
scales translated for DLA, or a calibration cache file): the engine must quantize and dequantize it with
that same scale. The rest (e.g. the shipped int8 models' float output tails) stays FP16, the cuDLA
sample's `int8:hwc4 in + fp16:chw16 out`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from dla_perception.runtime.errors import EngineError

LOADABLE_SUFFIX = ".dla"
IMAGE_CHANNELS = (3, 4)


def read_cache_scales(path: Path | None) -> dict[str, float]:
    """Per-tensor scales of a TensorRT calibration cache (`name: <float32 hex>` after its header line)."""
    if path is None or not Path(path).is_file():
        return {}
    scales = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        name, _, value = line.rpartition(":")
        try:
            scales[name.strip()] = float(np.uint32(int(value.strip(), 16)).view(np.float32))
        except ValueError:
            continue
    return scales


def configure_loadable(
    trt: ModuleType, network: Any, config: Any, precision: str, scales: dict[str, float],
    strongly_typed: bool = False,
) -> dict[str, dict[str, Any]]:
    """Make `config` build a standalone loadable; set each I/O tensor's type and format. Returns, per I/O
    tensor, what the engine needs to convert it: {"dtype", "format", "scale"}.

    Strongly typed (TensorRT 11.4.1+), the I/O keeps the model's own types, and only FP16 I/O is taken: a
    float32 or INT8 network tensor would need a type or a scale the model does not carry.
    """
    config.engine_capability = trt.EngineCapability.DLA_STANDALONE
    config.set_flag(trt.BuilderFlag.DIRECT_IO)
    chosen: dict[str, dict[str, Any]] = {}
    tensors = [(network.get_input(i), True) for i in range(network.num_inputs)]
    tensors += [(network.get_output(i), False) for i in range(network.num_outputs)]
    for tensor, is_input in tensors:
        shape = tuple(int(d) for d in tensor.shape)
        if strongly_typed:
            if tensor.dtype != trt.DataType.HALF:
                raise EngineError(
                    f"TensorRT {trt.__version__} builds strongly typed: a loadable's I/O keeps the model's "
                    f"types, and '{tensor.name}' is {tensor.dtype.name}; export the model with FP16 I/O "
                    "(modelopt.onnx.autocast --target_dla, without keep_io_types)")
            choice = choose_io(tensor.name, shape, is_input, "fp16", {})
        else:
            choice = choose_io(tensor.name, shape, is_input, precision, scales)
            tensor.dtype = trt.DataType.INT8 if choice["dtype"] == "int8" else trt.DataType.HALF
        tensor.allowed_formats = 1 << int(getattr(trt.TensorFormat, choice["format"]))
        chosen[tensor.name] = choice
    return chosen


def choose_io(name: str, shape: tuple[int, ...], is_input: bool, precision: str,
              scales: dict[str, float]) -> dict[str, Any]:
    """The DLA type and format of one I/O tensor of a loadable (see the module docstring)."""
    if len(shape) != 4:
        raise EngineError(f"DLA loadable I/O must be 4-D (NCHW): '{name}' has shape {shape}")
    scale = scales.get(name) if precision == "int8" else None
    int8 = bool(scale)
    if is_input and shape[1] in IMAGE_CHANNELS:
        fmt = "DLA_HWC4"
    else:
        fmt = "CHW32" if int8 else "CHW16"
    return {"dtype": "int8" if int8 else "float16", "format": fmt, "scale": float(scale) if int8 else None}


def refuse_gpu_layers(onnx_path: Path, precision: str, trt_version: str) -> None:
    """EngineError with dla-check's report when any layer of the model would need the GPU."""
    from dla_perception.dla.analysis import analyze

    line = ".".join(str(trt_version).split(".")[:2])
    try:
        report = analyze(onnx_path, line, precision)
    except ValueError as exc:  # a TensorRT line dla-check does not know: TensorRT itself decides
        raise EngineError(f"dla-check cannot judge {onnx_path} for TensorRT {trt_version}: {exc}") from exc
    if report.passes_strict:
        return
    offending = [f"{node.op} {node.name}: {'; '.join(node.reasons) or node.rule_reason}"
                 for node in report.gpu_layers] or [report.trt_note]
    raise EngineError(
        f"{onnx_path} cannot be built as a DLA standalone loadable (a loadable has no GPU fallback): "
        f"{report.verdict}; offending layers: " + " | ".join(offending)
        + f" (`dla-perception dla-check {onnx_path} --precision {precision} --fix OUT.onnx` rewrites some)"
    )
