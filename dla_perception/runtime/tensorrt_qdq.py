"""Explicitly quantized (Q/DQ) ONNX models for TensorRT: recognise them, and translate them for Orin's DLA.

TensorRT builds a network with Q/DQ layers with explicit quantization (no calibrator). Orin's DLA on
TensorRT 10 takes INT8 only as implicit quantization, i.e. per-tensor scales of a calibration cache:
"DLA still only supports IQ. The suggested workflow ... Use NVIDIA's Q/DQ Translator Toolkit to obtain the
calib.cache ... which can be used with the non-quantized model to generate a DLA loadable"
(NVIDIA/Model-Optimizer#1661; NVIDIA/TensorRT#2222: "if you convert it to implicit quantization, it would
work with DLA"; NVIDIA/Deep-Learning-Accelerator-SW tools/qdq-translator). `translate` does that here:
Q->DQ pairs on activations become calibration-cache entries with the model's own scales, DequantizeLinear
on constant weights becomes the dequantized float weights (TensorRT re-quantizes them per channel to the
same INT8 values), so no calibration data and no calibration pass are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

QUANTIZE, DEQUANTIZE = "QuantizeLinear", "DequantizeLinear"


class TranslationError(ValueError):
    """A Q/DQ placement that per-tensor calibration scales cannot express."""


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(node.op_type in (QUANTIZE, DEQUANTIZE) for node in model.graph.node)


@dataclass
class Translation:
    model: onnx.ModelProto  # the network without Q/DQ nodes
    scales: dict[str, float]  # tensor name -> INT8 scale (dequantized value = int8 * scale)
    pairs: int = 0  # activation Q->DQ pairs turned into scales
    weights: int = 0  # dequantized constant weights
    notes: list[str] = field(default_factory=list)


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _scale_and_zero(
    node: onnx.NodeProto, constants: dict[str, np.ndarray], weights: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point; activations must be int8 with zero point 0 (an absent one means uint8)."""
    if len(node.input) < 2 or node.input[1] not in constants:
        raise TranslationError(f"{node.op_type} '{node.name}': its scale is not a constant")
    scale = np.asarray(constants[node.input[1]], dtype=np.float32)
    if len(node.input) > 2 and node.input[2]:
        zero = np.asarray(constants[node.input[2]])
    else:
        zero = np.zeros((), constants[node.input[0]].dtype if weights else np.uint8)
    if zero.dtype != np.int8 and not (weights and zero.dtype == np.int32):
        raise TranslationError(
            f"{node.op_type} '{node.name}': {zero.dtype} quantization; TensorRT's INT8 is "
            "signed and symmetric (quantize with int8 activations and weights)"
        )
    if np.any(zero != 0):
        raise TranslationError(
            f"{node.op_type} '{node.name}': zero point {zero.ravel()[:4]} is not 0 "
            "(asymmetric); TensorRT's INT8 is symmetric"
        )
    return scale, zero


def _axis(node: onnx.NodeProto) -> int:
    for attribute in node.attribute:
        if attribute.name == "axis":
            return int(attribute.i)
    return 1


def translate(model: onnx.ModelProto) -> Translation:
    """The model without Q/DQ nodes and the per-tensor scales they carried; TranslationError if impossible."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    constants = _constants(model)
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {value.name for value in graph.output}
    rename: dict[str, str] = {}
    removed: set[int] = set()
    new_weights: list[onnx.TensorProto] = []
    result = Translation(model, {})
    for node in graph.node:
        if node.op_type != DEQUANTIZE:
            continue
        source = node.input[0]
        scale, zero = _scale_and_zero(node, constants, weights=source in constants)
        if source in constants:  # quantized constant weights -> their float values
            weights = constants[source].astype(np.float32)
            if scale.ndim:
                shape = [1] * weights.ndim
                shape[_axis(node) % weights.ndim] = -1
                scale = scale.reshape(shape)
            new_weights.append(numpy_helper.from_array((weights * scale).astype(np.float32), node.output[0]))
            removed.add(id(node))
            result.weights += 1
            continue
        quantize = producer.get(source)
        if quantize is None or quantize.op_type != QUANTIZE:
            raise TranslationError(
                f"DequantizeLinear '{node.name}' dequantizes '{source}', which no QuantizeLinear produces"
            )
        q_scale, _ = _scale_and_zero(quantize, constants)
        if q_scale.size != 1 or scale.size != 1:
            raise TranslationError(
                f"'{quantize.input[0]}' is quantized per channel; activations need one "
                "scale per tensor (TensorRT and DLA)"
            )
        if any(c.op_type != DEQUANTIZE for c in consumers.get(source, [])):
            raise TranslationError(
                f"QuantizeLinear '{quantize.name}' feeds a layer directly; only Q->DQ pairs carry a scale"
            )
        tensor = quantize.input[0]
        if node.output[0] in outputs:  # keep the graph output's name: the float tensor takes it
            rename[tensor] = node.output[0]
            tensor = node.output[0]
        else:
            rename[node.output[0]] = tensor
        result.scales[tensor] = float(q_scale.ravel()[0])
        removed.update({id(node), id(quantize)})
        result.pairs += 1

    def final(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    kept = [node for node in graph.node if id(node) not in removed]
    for node in kept:
        node.input[:] = [final(name) for name in node.input]
        node.output[:] = [final(name) for name in node.output]
    for value in graph.input:
        value.name = final(value.name)
    result.scales = {final(name): value for name, value in result.scales.items()}
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    keep_inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep_inits + [w for w in new_weights if w.name in used])
    del graph.value_info[:]
    leftover = [node.name for node in kept if node.op_type in (QUANTIZE, DEQUANTIZE)]
    if leftover:
        raise TranslationError(f"Q/DQ nodes left that carry no tensor scale: {leftover[:5]}")
    onnx.checker.check_model(model)
    return result


def calibration_cache(scales: dict[str, float], trt_version: tuple[int, int, int]) -> bytes:
    """TensorRT's cache text: "TRT-<NV_TENSORRT_VERSION>-EntropyCalibration2" then "name: <float32 hex>".

    NV_TENSORRT_VERSION = major * 10000 + minor * 100 + patch (NvInferRuntimeBase.h), e.g. 100300 for 10.3.0.
    """
    major, minor, patch = trt_version
    lines = [f"TRT-{major * 10000 + minor * 100 + patch}-EntropyCalibration2"]
    lines += [f"{name}: {np.float32(scale).view(np.uint32):08x}" for name, scale in sorted(scales.items())]
    return ("\n".join(lines) + "\n").encode()
