"""Q/DQ (explicitly quantized) graphs in the DLA check: which Quantize/Dequantize placements DLA can take.

Sources: Orin's DLA takes INT8 as per-tensor scales of implicit quantization ("DLA still only supports IQ";
the workflow is ModelOpt's Q/DQ model -> NVIDIA's Q/DQ translator -> calibration cache:
NVIDIA/Model-Optimizer#1661, NVIDIA/TensorRT#2222, Deep-Learning-Accelerator-SW tools/qdq-translator),
which is what `build-engine` does for a DLA core on TensorRT 10 (runtime/tensorrt_qdq.py); TensorRT 11.4.1+
builds DLA networks strongly typed, where Q/DQ layers set the INT8 precision (docs 11.4.1, "Strongly Typed
Networks for DLA"). Either way the placement must be expressible as TensorRT INT8 scales:
- a QuantizeLinear -> DequantizeLinear pair on an activation, int8, zero point 0 (TensorRT's INT8 is
  symmetric), one scale per tensor: it becomes that tensor's INT8 scale, not a layer;
- a DequantizeLinear of constant weights (int8, zero point 0, per tensor or per output channel): folded
  into the layer that uses them (TensorRT re-quantizes the weights per channel itself);
- anything else (per-channel activation scales, uint8 or asymmetric zero points, a Q whose output feeds a
  layer, a DQ of a computed tensor) has no such meaning and stays on the GPU, with the reason.
A DLA layer whose tensors carry no scale runs in FP16 inside its DLA subgraph (a warning, not a fallback):
"a tensor without a usable scale typically forces that region to run in FP16" (Model-Optimizer#1661).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from dla_perception.dla.graph import constant_value, input_at, is_constant

QUANTIZE, DEQUANTIZE = "QuantizeLinear", "DequantizeLinear"


def is_qdq_model(graph: gs.Graph) -> bool:
    return any(node.op in (QUANTIZE, DEQUANTIZE) for node in graph.nodes)


def quantized_tensors(graph: gs.Graph) -> frozenset[str]:
    """Tensors that carry an INT8 scale: inputs of Quantize and outputs of Dequantize nodes."""
    names = {node.inputs[0].name for node in graph.nodes if node.op == QUANTIZE and node.inputs}
    names |= {node.outputs[0].name for node in graph.nodes if node.op == DEQUANTIZE and node.outputs}
    return frozenset(names)


def _scale_problems(node: gs.Node, weights: bool) -> list[str]:
    scale = constant_value(input_at(node, 1))
    if scale is None:
        return ["the scale is computed at run time; a scale must be a constant"]
    problems = []
    if np.asarray(scale).size != 1 and not weights:
        problems.append("per-channel activation scale: TensorRT and DLA take one scale per activation tensor")
    zero = constant_value(input_at(node, 2)) if input_at(node, 2) is not None else None
    if zero is None and input_at(node, 2) is not None:
        problems.append("the zero point is computed at run time")
    elif zero is None:
        if node.op == QUANTIZE or not weights:
            problems.append(
                "no zero point: ONNX then quantizes to uint8; TensorRT's INT8 is signed (use int8)"
            )
    elif np.asarray(zero).dtype not in (np.int8, np.int32):
        problems.append(
            f"{np.asarray(zero).dtype} quantization; TensorRT's INT8 is signed symmetric (use int8)"
        )
    elif np.any(np.asarray(zero) != 0):
        problems.append("zero point is not 0 (asymmetric): TensorRT's INT8 is symmetric")
    return problems


def place(node: gs.Node) -> tuple[bool, list[str]]:
    """(becomes scales/weights, reasons) for one QuantizeLinear or DequantizeLinear node."""
    data = input_at(node, 0)
    if node.op == DEQUANTIZE and data is not None and is_constant(data):
        problems = _scale_problems(node, weights=True)
        return not problems, problems or ["quantized weights: folded into the layer that uses them"]
    problems = _scale_problems(node, weights=False)
    if node.op == QUANTIZE:
        consumers = node.outputs[0].outputs if node.outputs else []
        if not consumers or any(c.op != DEQUANTIZE for c in consumers):
            problems.append("the quantized tensor feeds a layer directly; only Q->DQ pairs carry a scale")
        reason = f"Q/DQ pair: the INT8 scale of '{data.name if data is not None else '?'}'"
    else:
        producer = data.inputs[0] if data is not None and data.inputs else None
        if producer is None or producer.op != QUANTIZE:
            problems.append("dequantizes a computed tensor that no QuantizeLinear produced")
        reason = "Q/DQ pair: dequantizes to the float tensor the next layer reads"
    return not problems, problems or [reason]


def unscaled_dla_tensors(graph: gs.Graph, dla_nodes: set[str], quantized: frozenset[str]) -> list[str]:
    """Activation tensors of DLA layers without an INT8 scale (in a Q/DQ model: they run in FP16)."""
    missing: list[str] = []
    for node in graph.nodes:
        if node.name not in dla_nodes:
            continue
        for tensor in [*node.inputs, *node.outputs]:
            if tensor.name and not is_constant(tensor) and tensor.name not in quantized:
                if tensor.name not in missing:
                    missing.append(tensor.name)
    return missing
