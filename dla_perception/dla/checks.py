"""The limit checkers named by the rules in `rules.py`.

Each checker takes the node, its rule and the analysis context and returns the list of problems that keep
the node off the DLA (empty: the node can run there). Limits come from `rule.limits`, never from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from dla_perception.dla.graph import (
    activations,
    constant_value,
    input_at,
    is_constant,
    is_static,
    present,
    shape_of,
)
from dla_perception.dla.rules import Rule


@dataclass(frozen=True)
class Context:
    opset: int
    precision: str  # fp16 | int8: what the DLA engine will be built with
    strongly_typed: bool  # TensorRT 11.4+: tensor types decide precision
    quantized: frozenset[str] = frozenset()  # tensors with an INT8 scale (Q inputs, DQ outputs)


Problems = list[str]


def _within(name: str, values: Sequence[int], bounds: tuple[int, int]) -> Problems:
    low, high = bounds
    bad = [int(v) for v in values if not low <= int(v) <= high]
    return [f"{name} {list(map(int, values))} outside {low}-{high}"] if bad else []


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


# --- general restrictions -----------------------------------------------------------------------------


def general(node: gs.Node, context: Context, limits: dict) -> list[tuple[str, str]]:
    """Static shapes, 4-D activations, dimension limits and float types for every DLA layer.

    Returns (general rule id, problem) pairs, so the report can name the rule that failed."""
    problems: list[tuple[str, str]] = []
    tensors = activations(node) + [t for t in node.outputs if present(t)]
    for tensor in tensors:
        shape = shape_of(tensor)
        if shape is None:
            problems.append(("static-shapes", f"shape of '{tensor.name}' unknown after ONNX shape inference"))
            continue
        if not is_static(shape):
            problems.append(("static-shapes", f"dynamic shape {list(shape)} of '{tensor.name}'"))
            continue
        if len(shape) != limits["rank"]:
            text = f"'{tensor.name}' is {len(shape)}-D, DLA layers take 4-D (NCHW) tensors"
            problems.append(("rank-4", text))
            continue
        if shape[0] > limits["max_batch"] or any(d > limits["max_dim"] for d in shape[1:]):
            text = f"'{tensor.name}' {list(shape)} exceeds the DLA dimension limits"
            problems.append(("dimension-limits", text))
        dtype = np.dtype(tensor.dtype) if tensor.dtype is not None else None
        if node.op in ("Equal", "Greater", "Less") and tensor in node.outputs:
            continue  # the comparison rule decides about its boolean output
        if dtype is not None and dtype.kind != "f":
            text = f"'{tensor.name}' is {dtype.name}, DLA computes FP16/INT8 only"
            problems.append(("float-tensors", text))
        elif context.strongly_typed and dtype is not None and dtype != np.float16 and (
            tensor.name not in context.quantized
        ):
            text = f"'{tensor.name}' is {dtype.name}: a strongly typed DLA network needs float16"
            problems.append(("strongly-typed-fp16", text))
    return problems


# --- layer checkers -------------------------------------------------------------------------------------


def _spatial_attrs(node: gs.Node, kernel: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    rank = len(kernel)
    strides = list(node.attrs.get("strides", [1] * rank))
    dilations = list(node.attrs.get("dilations", [1] * rank))
    pads = list(node.attrs.get("pads", [0] * (2 * rank)))
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = [(k - 1) * d for k, d in zip(kernel, dilations, strict=True)]
        pads = [t // 2 for t in total] + [t - t // 2 for t in total]
    return strides, dilations, pads


def convolution(node: gs.Node, rule: Rule, context: Context) -> Problems:
    weights = input_at(node, 1)
    if weights is None or not is_constant(weights):
        return ["weights are computed at run time; DLA needs constant weights"]
    shape = shape_of(weights)
    if shape is None or len(shape) != 4:
        return [f"{len(shape) - 2 if shape else '?'}-D convolution; DLA runs 2-D only"]
    kernel = list(node.attrs.get("kernel_shape", shape[2:]))
    strides, dilations, pads = _spatial_attrs(node, kernel)
    limits = rule.limits
    problems = _within("kernel", kernel, limits["kernel"])
    problems += _within("stride", strides, limits["stride"])
    problems += _within("dilation", dilations, limits["dilation"])
    problems += _within("padding", pads, limits["padding"])
    if any(p >= kernel[i % 2] for i, p in enumerate(pads)):
        problems.append(f"padding {pads} not smaller than the kernel {kernel}")
    if shape[0] > limits["maps"]:
        problems.append(f"{shape[0]} output maps, DLA allows at most {limits['maps']}")
    return problems


def deconvolution(node: gs.Node, rule: Rule, context: Context) -> Problems:
    weights = input_at(node, 1)
    if weights is None or not is_constant(weights):
        return ["weights are computed at run time; DLA needs constant weights"]
    shape = shape_of(weights)
    if shape is None or len(shape) != 4:
        return ["not a 2-D deconvolution"]
    kernel = list(node.attrs.get("kernel_shape", shape[2:]))
    strides, dilations, pads = _spatial_attrs(node, kernel)
    problems = _within("kernel", kernel, rule.limits["kernel"])
    problems += _within("stride", strides, rule.limits["stride"])
    if any(pads) or any(node.attrs.get("output_padding", [])):
        problems.append(f"padding {pads}; DLA deconvolution takes no padding")
    if int(node.attrs.get("group", 1)) != 1:
        problems.append("grouped deconvolution")
    if any(d != 1 for d in dilations):
        problems.append("dilated deconvolution")
    return problems


def pooling(node: gs.Node, rule: Rule, context: Context) -> Problems:
    kernel = list(node.attrs.get("kernel_shape", []))
    if len(kernel) != 2:
        return [f"{len(kernel)}-D pooling; DLA pools 2-D"]
    strides, dilations, pads = _spatial_attrs(node, kernel)
    problems = _within("window", kernel, rule.limits["window"])
    problems += _within("stride", strides, rule.limits["stride"])
    problems += _within("padding", pads, rule.limits["padding"])
    if any(d != 1 for d in dilations):
        problems.append("dilated pooling")
    if len(node.outputs) > 1 and present(node.outputs[1]) and node.outputs[1].outputs:
        problems.append("MaxPool indices output is used")
    return problems


def global_pooling(node: gs.Node, rule: Rule, context: Context) -> Problems:
    shape = shape_of(node.inputs[0])
    if not is_static(shape) or len(shape) != 4:
        return []  # the general rules report it
    return _within("window (H, W)", shape[2:], rule.limits["window"])


def clip(node: gs.Node, rule: Rule, context: Context) -> Problems:
    if context.opset < 11:
        low = node.attrs.get("min")
    else:
        low_t, high_t = input_at(node, 1), input_at(node, 2)
        if any(t is not None and not is_constant(t) for t in (low_t, high_t)):
            return ["clip bounds computed at run time"]
        low = None if low_t is None else float(constant_value(low_t))
    if low is None or float(low) != 0.0:
        return [f"min {low} (DLA's clipped ReLU needs min 0)"]
    return []


def prelu(node: gs.Node, rule: Rule, context: Context) -> Problems:
    slope = input_at(node, 1)
    return [] if slope is not None and is_constant(slope) else ["slopes computed at run time"]


def _broadcast_kind(shape: Sequence[int], output: Sequence[int]) -> str | None:
    """'scalar', 'channel' or 'full' for a constant operand that DLA can broadcast, else None."""
    aligned = [1] * (len(output) - len(shape)) + list(shape)
    if len(aligned) != len(output):
        return None
    if all(d == 1 for d in aligned):
        return "scalar"
    if list(aligned) == list(output):
        return "full"
    if len(output) == 4 and aligned[1] == output[1] and aligned[0] == aligned[2] == aligned[3] == 1:
        return "channel"
    return None


def elementwise(node: gs.Node, rule: Rule, context: Context) -> Problems:
    output = shape_of(node.outputs[0])
    if not is_static(output):
        return []
    problems: Problems = []
    for tensor in (t for t in node.inputs if present(t)):
        shape = shape_of(tensor)
        if is_constant(tensor):
            if shape is not None and _broadcast_kind(shape, output) is None:
                problems.append(f"constant '{tensor.name}' {list(shape)} broadcasts in a way DLA does not")
        elif shape is not None and list(shape) != list(output):
            problems.append(f"'{tensor.name}' {list(shape)} broadcast to {list(output)} (not for DLA)")
    return problems


def comparison(node: gs.Node, rule: Rule, context: Context) -> Problems:
    problems: Problems = []
    if context.precision != "int8":
        problems.append(f"comparisons run on DLA in INT8 only (building {context.precision})")
    consumers = node.outputs[0].outputs
    if not consumers or any(c.op != "Cast" for c in consumers):
        problems.append("the boolean output is not cast to FP16/INT8 immediately")
    return problems


def concatenation(node: gs.Node, rule: Rule, context: Context) -> Problems:
    inputs = [t for t in node.inputs if present(t)]
    output = shape_of(node.outputs[0])
    problems: Problems = []
    if len(inputs) < 2:
        problems.append("fewer than 2 inputs")
    if output is not None and _axis(int(node.attrs.get("axis", 1)), len(output)) != 1:
        problems.append(f"axis {node.attrs.get('axis')} is not the channel axis")
    return problems


def resize(node: gs.Node, rule: Rule, context: Context) -> Problems:
    mode = node.attrs.get("mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    mode = "linear" if mode == "bilinear" else mode
    if mode not in rule.limits:
        return [f"{mode} interpolation (DLA: nearest or linear)"]
    before, after = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    if not (is_static(before) and is_static(after)) or len(before) != 4 or len(after) != 4:
        return []  # the general rules report it
    scales = [a / b for a, b in zip(after, before, strict=True)]
    problems: Problems = []
    if scales[0] != 1 or scales[1] != 1:
        problems.append(f"scales {scales} resize N or C")
    spatial = scales[2:]
    if any(abs(s - round(s)) > 1e-6 for s in spatial) or any(s < 1 for s in spatial):
        problems.append(f"H/W scales {spatial} are not integers >= 1")
    else:
        problems += _within(f"{mode} H/W scale", [round(s) for s in spatial], rule.limits[mode])
    return problems


def _slice_parameters(node: gs.Node, context: Context) -> tuple | None:
    if context.opset < 10:
        attrs = node.attrs
        starts, ends = attrs.get("starts"), attrs.get("ends")
        axes = attrs.get("axes", list(range(len(starts or []))))
        return starts, ends, axes, [1] * len(starts or [])
    values = [constant_value(input_at(node, index)) for index in range(1, 5)]
    starts, ends, axes, steps = values
    if starts is None or ends is None or (input_at(node, 3) is not None and axes is None) or (
        input_at(node, 4) is not None and steps is None
    ):
        return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    return list(starts), list(ends), list(axes), list(steps)


def slice_(node: gs.Node, rule: Rule, context: Context) -> Problems:
    parameters = _slice_parameters(node, context)
    if parameters is None:
        return ["slice bounds computed at run time"]
    starts, ends, axes, steps = parameters
    shape = shape_of(node.inputs[0])
    rank = len(shape) if shape is not None else 4
    problems: Problems = []
    if any(int(s) != 1 for s in steps):
        problems.append(f"steps {list(map(int, steps))}; DLA slices with stride 1")
    for start, end, axis in zip(starts, ends, axes, strict=False):
        if _axis(int(axis), rank) == 0:
            whole = shape is not None and is_static(shape) and int(start) == 0 and int(end) >= shape[0]
            if not whole:
                problems.append("slices the batch axis")
    return problems


def split(node: gs.Node, rule: Rule, context: Context) -> Problems:
    shape = shape_of(node.inputs[0])
    rank = len(shape) if shape is not None else 4
    if _axis(int(node.attrs.get("axis", 0)), rank) == 0:
        return ["splits the batch axis"]
    sizes = input_at(node, 1)
    if sizes is not None and not is_constant(sizes):
        return ["split sizes computed at run time"]
    return []


def softmax(node: gs.Node, rule: Rule, context: Context) -> Problems:
    shape = shape_of(node.inputs[0])
    if not is_static(shape) or len(shape) != 4:
        return []  # the general rules report it
    axis = _axis(int(node.attrs.get("axis", 1 if context.opset < 13 else -1)), len(shape))
    if context.opset < 13 and axis != len(shape) - 1 and any(d > 1 for d in shape[axis + 1 :]):
        return [f"opset {context.opset} Softmax flattens axes {axis}.. into one (a reshape around the layer)"]
    if axis == 0:
        return ["softmax over the batch axis"]
    others = [d for i, d in enumerate(shape) if i not in (0, axis)]
    limit = rule.limits["single"] if all(d == 1 for d in others) else rule.limits["general"]
    if shape[axis] > limit:
        return [f"softmax axis of size {shape[axis]} exceeds {limit} (other dimensions {others})"]
    return []


def shuffle(node: gs.Node, rule: Rule, context: Context) -> Problems:
    before, after = shape_of(node.inputs[0]), shape_of(node.outputs[0])
    problems: Problems = []
    if node.op == "Reshape":
        target = input_at(node, 1)
        if target is not None and not is_constant(target):
            problems.append("reshape target computed at run time")
    if node.op == "Transpose":
        perm = list(node.attrs.get("perm", []))
        if perm and perm[0] != 0:
            problems.append(f"permutation {perm} moves the batch axis")
    elif is_static(before) and is_static(after) and before and after and before[0] != after[0]:
        problems.append(f"reshape {list(before)} -> {list(after)} changes the batch dimension")
    return problems


def batchnorm(node: gs.Node, rule: Rule, context: Context) -> Problems:
    if any(not is_constant(t) for t in node.inputs[1:5] if present(t)):
        return ["normalisation parameters computed at run time"]
    if int(node.attrs.get("training_mode", 0)):
        return ["training-mode BatchNormalization"]
    return []


def lrn(node: gs.Node, rule: Rule, context: Context) -> Problems:
    size = int(node.attrs.get("size", 0))
    return [] if size in rule.limits["sizes"] else [f"window {size} (DLA: {rule.limits['sizes']})"]


CHECKERS: dict[str, Callable[[gs.Node, Rule, Context], Problems]] = {
    "convolution": convolution,
    "deconvolution": deconvolution,
    "pooling": pooling,
    "global_pooling": global_pooling,
    "clip": clip,
    "prelu": prelu,
    "elementwise": elementwise,
    "comparison": comparison,
    "concatenation": concatenation,
    "resize": resize,
    "slice": slice_,
    "split": split,
    "softmax": softmax,
    "shuffle": shuffle,
    "batchnorm": batchnorm,
    "lrn": lrn,
}
