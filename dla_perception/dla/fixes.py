"""Rewrites that move layers onto the DLA while keeping the network's function (onnx-graphsurgeon).

Exact rewrites (applied by default; verified in onnxruntime by `verify.py`):
- GlobalAveragePool / GlobalMaxPool over more than 8x8 -> a chain of pools with windows <= 8
- ReduceMean over H and/or W -> AveragePool (chained the same way)
- MaxPool / AveragePool windows over 8 -> chains of smaller pools
- MatMul / Gemm with constant weights -> 1x1 Convolution between reshapes
- Slice with steps over H/W (space-to-depth stems) -> depthwise Convolution with a one-hot kernel
- element-wise ops between [N, C, H, W] and a computed [N, C, 1, 1] (squeeze-and-excitation) -> the small
  operand expanded by nearest Resizes first
- Softmax behind Transposes/Reshapes -> Softmax on the 4-D tensor's matching axis, then the Transpose
- clean-ups those leave behind: reshape pairs that cancel, transposes that cancel or merge

Approximate rewrites (only on request): linear (bilinear) Resize -> nearest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from dla_perception.dla.graph import (
    constant_value,
    input_at,
    is_constant,
    is_static,
    load_graph,
    lower_ir_version,
    shape_of,
)

MAX_WINDOW = 8  # DLA pooling window limit (rules.py, rule "pooling")
MAX_PADDING = 7


@dataclass
class Rewrite:
    fix: str  # which rewrite
    node: str  # the node it replaced
    detail: str
    exact: bool = True

    def as_dict(self) -> dict:
        return {"fix": self.fix, "node": self.node, "detail": self.detail, "exact": self.exact}


@dataclass
class FixOutcome:
    model: onnx.ModelProto
    applied: list[Rewrite] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # candidates left alone, with the reason


class _Namer:
    """Fresh tensor and node names that do not clash with the graph's."""

    def __init__(self, graph: gs.Graph):
        self.used = {n.name for n in graph.nodes} | set(graph.tensors().keys())

    def __call__(self, base: str) -> str:
        index, name = 0, base
        while name in self.used:
            index += 1
            name = f"{base}_{index}"
        self.used.add(name)
        return name


class _Editor:
    """Small helpers to splice chains of new nodes into a graph."""

    def __init__(self, graph: gs.Graph):
        self.graph = graph
        self.name = _Namer(graph)

    def variable(self, base: str, like: gs.Tensor, shape: Sequence[int]) -> gs.Variable:
        return gs.Variable(self.name(base), dtype=like.dtype or np.float32, shape=list(shape))

    def constant(self, base: str, value: np.ndarray) -> gs.Constant:
        return gs.Constant(self.name(base), np.ascontiguousarray(value))

    def node(self, op: str, base: str, inputs: list, outputs: list, **attrs) -> gs.Node:
        node = gs.Node(op=op, name=self.name(base), attrs=attrs, inputs=inputs, outputs=outputs)
        self.graph.nodes.append(node)
        return node

    def reshape(self, base: str, tensor: gs.Tensor, shape: Sequence[int], output: gs.Tensor | None = None):
        output = output if output is not None else self.variable(f"{base}_out", tensor, shape)
        target = self.constant(f"{base}_shape", np.asarray(shape, dtype=np.int64))
        self.node("Reshape", base, [tensor, target], [output])
        return output


def _detach(node: gs.Node) -> gs.Tensor:
    """Disconnect a node from its outputs (cleanup removes it) and return its first output."""
    output = node.outputs[0]
    node.outputs.clear()
    return output


def split_window(size: int, limit: int = MAX_WINDOW) -> list[int] | None:
    """Factor a window into windows <= limit whose product is size (non-overlapping chain), or None."""
    factors: list[int] = []
    while size > 1:
        divisor = next((d for d in range(limit, 1, -1) if size % d == 0), None)
        if divisor is None:
            return None
        factors.append(divisor)
        size //= divisor
    return factors or [1]


def split_overlapping(window: int, limit: int = MAX_WINDOW) -> list[int]:
    """Windows <= limit for a chain of stride-1 max pools: their (w - 1) add up to window - 1."""
    if window <= limit:
        return [window]
    stages = -(-(window - 1) // (limit - 1))
    base, extra = divmod(window - 1, stages)
    return [base + 1 + (1 if i < extra else 0) for i in range(stages)]


def _pair(first: list[int], second: list[int]) -> list[tuple[int, int]]:
    length = max(len(first), len(second))
    first, second = first + [1] * (length - len(first)), second + [1] * (length - len(second))
    return list(zip(first, second, strict=True))


def _pool_chain(edit: _Editor, op: str, base: str, tensor, windows, output) -> None:
    """Non-overlapping pools (stride = window) one after another; the last writes `output`."""
    shape = list(shape_of(tensor))
    for index, (kh, kw) in enumerate(windows):
        shape = [shape[0], shape[1], shape[2] // kh, shape[3] // kw]
        last = index == len(windows) - 1
        out = output if last else edit.variable(f"{base}_pool{index}", tensor, shape)
        edit.node(op, f"{base}_pool{index}", [tensor], [out], kernel_shape=[kh, kw], strides=[kh, kw])
        tensor = out


# --- the exact rewrites --------------------------------------------------------------------------------


def fix_global_pooling(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    for node in list(graph.nodes):
        if node.op not in ("GlobalAveragePool", "GlobalMaxPool"):
            continue
        shape = shape_of(node.inputs[0])
        if not is_static(shape) or len(shape) != 4:
            outcome.skipped.append(f"{node.name}: global pooling needs a static 4-D input")
            continue
        height, width = shape[2], shape[3]
        if height <= MAX_WINDOW and width <= MAX_WINDOW:
            continue  # already a DLA pooling
        split_h, split_w = split_window(height), split_window(width)
        if split_h is None or split_w is None:
            outcome.skipped.append(f"{node.name}: {height}x{width} does not factor into windows <= 8")
            continue
        windows = _pair(split_h, split_w)
        op = "AveragePool" if node.op == "GlobalAveragePool" else "MaxPool"
        _pool_chain(edit, op, node.name, node.inputs[0], windows, _detach(node))
        outcome.applied.append(Rewrite("global-pooling", node.name, f"{op} windows {windows}"))


def fix_reduce_mean(graph: gs.Graph, edit: _Editor, outcome: FixOutcome, opset: int) -> None:
    for node in list(graph.nodes):
        if node.op != "ReduceMean":
            continue
        shape = shape_of(node.inputs[0])
        if not is_static(shape) or len(shape) != 4:
            outcome.skipped.append(f"{node.name}: ReduceMean needs a static 4-D input")
            continue
        axes_input = input_at(node, 1)
        axes = node.attrs.get("axes") if opset < 18 else constant_value(axes_input) if axes_input else None
        if axes is None:
            outcome.skipped.append(f"{node.name}: ReduceMean over all axes (or run-time axes)")
            continue
        axes = sorted({int(a) % 4 for a in np.atleast_1d(axes)})
        if not axes or not set(axes) <= {2, 3}:
            outcome.skipped.append(f"{node.name}: ReduceMean over axes {axes}, not H/W")
            continue
        window_h = shape[2] if 2 in axes else 1
        window_w = shape[3] if 3 in axes else 1
        split_h, split_w = split_window(window_h), split_window(window_w)
        if split_h is None or split_w is None:
            outcome.skipped.append(f"{node.name}: {window_h}x{window_w} does not factor into windows <= 8")
            continue
        windows = _pair(split_h, split_w)
        output = _detach(node)
        if int(node.attrs.get("keepdims", 1)):
            _pool_chain(edit, "AveragePool", node.name, node.inputs[0], windows, output)
        else:
            pooled_shape = [shape[0], shape[1], shape[2] // window_h, shape[3] // window_w]
            pooled = edit.variable(f"{node.name}_pooled", node.inputs[0], pooled_shape)
            _pool_chain(edit, "AveragePool", node.name, node.inputs[0], windows, pooled)
            kept = [d for i, d in enumerate(pooled_shape) if i not in axes]
            edit.reshape(f"{node.name}_squeeze", pooled, kept, output)
        outcome.applied.append(Rewrite("reduce-mean", node.name, f"AveragePool windows {windows}"))


def fix_large_pooling(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    for node in list(graph.nodes):
        if node.op not in ("MaxPool", "AveragePool"):
            continue
        kernel = list(node.attrs.get("kernel_shape", []))
        if len(kernel) != 2 or max(kernel) <= MAX_WINDOW:
            continue
        strides = list(node.attrs.get("strides", [1, 1]))
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
        plain = (
            node.attrs.get("auto_pad", "NOTSET") in ("NOTSET", b"NOTSET")
            and not int(node.attrs.get("ceil_mode", 0))
            and list(node.attrs.get("dilations", [1, 1])) == [1, 1]
            and not (len(node.outputs) > 1 and node.outputs[1].outputs)
            and is_static(shape_of(node.inputs[0]))
        )
        if not plain:
            outcome.skipped.append(f"{node.name}: pooling with auto_pad/ceil_mode/dilations/indices")
            continue
        if node.op == "MaxPool":
            _split_max_pool(edit, node, kernel, strides, pads, outcome)
        elif strides == kernel and not any(pads):
            split_h, split_w = split_window(kernel[0]), split_window(kernel[1])
            if split_h is None or split_w is None:
                outcome.skipped.append(f"{node.name}: window {kernel} does not factor into windows <= 8")
                continue
            windows = _pair(split_h, split_w)
            _pool_chain(edit, "AveragePool", node.name, node.inputs[0], windows, _detach(node))
            outcome.applied.append(Rewrite("large-pooling", node.name, f"AveragePool windows {windows}"))
        else:
            outcome.skipped.append(
                f"{node.name}: overlapping or padded AveragePool {kernel}: no exact split into windows <= 8"
            )


def _split_max_pool(edit: _Editor, node: gs.Node, kernel, strides, pads, outcome: FixOutcome) -> None:
    """max over k = max over w1, then over w2 ... (stride 1) with sum(w - 1) = k - 1; last stage strided.
    Each stage takes part of the padding (at most w - 1 per side), so out-of-range cells stay excluded."""
    stages_h, stages_w = split_overlapping(kernel[0]), split_overlapping(kernel[1])
    count = max(len(stages_h), len(stages_w))
    windows = list(zip(stages_h + [1] * (count - len(stages_h)), stages_w + [1] * (count - len(stages_w)),
                       strict=True))
    remaining, plan = list(pads), []  # pads: top, left, bottom, right
    for window in windows:
        stage_pads = [min(remaining[i], window[i % 2] - 1, MAX_PADDING) for i in range(4)]
        remaining = [r - p for r, p in zip(remaining, stage_pads, strict=True)]
        plan.append((list(window), stage_pads))
    if any(remaining):
        outcome.skipped.append(f"{node.name}: padding {pads} too large to spread over windows <= 8")
        return
    tensor, shape = node.inputs[0], list(shape_of(node.inputs[0]))
    output = _detach(node)
    for index, (window, stage_pads) in enumerate(plan):
        last = index == len(plan) - 1
        stride = strides if last else [1, 1]
        shape = [
            shape[0],
            shape[1],
            (shape[2] + stage_pads[0] + stage_pads[2] - window[0]) // stride[0] + 1,
            (shape[3] + stage_pads[1] + stage_pads[3] - window[1]) // stride[1] + 1,
        ]
        out = output if last else edit.variable(f"{node.name}_max{index}", tensor, shape)
        edit.node("MaxPool", f"{node.name}_max{index}", [tensor], [out],
                  kernel_shape=window, strides=stride, pads=stage_pads)
        tensor = out
    outcome.applied.append(Rewrite("large-pooling", node.name, f"MaxPool chain {windows}"))


def _slice_steps(node: gs.Node, shape: Sequence[int]) -> dict[int, tuple[int, int, int]] | None:
    """{axis: (start, end, step)} of a Slice with constant parameters (opset >= 10), or None."""
    values = [constant_value(input_at(node, index)) for index in range(1, 5)]
    starts, ends, axes, steps = values
    if starts is None or ends is None or (input_at(node, 3) is not None and axes is None):
        return None
    if input_at(node, 4) is not None and steps is None:
        return None
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    found = {}
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis, size = int(axis) % len(shape), shape[int(axis) % len(shape)]
        start = int(start) + size if int(start) < 0 else int(start)
        found[axis] = (min(max(start, 0), size), int(end), int(step))
    return found


def fix_strided_slice(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    """x[:, :, h0::sh, w0::sw] (YOLOX's Focus stem) = a depthwise Conv whose one-hot kernel picks the
    pixel at (h0, w0) of every stride-sized block. Exact for finite inputs (multiplies by 1 and 0)."""
    for node in list(graph.nodes):
        if node.op != "Slice":
            continue
        shape, out_shape = shape_of(node.inputs[0]), shape_of(node.outputs[0])
        if not (is_static(shape) and is_static(out_shape)) or len(shape) != 4:
            continue
        parameters = _slice_steps(node, shape)
        if parameters is None or all(step == 1 for _, _, step in parameters.values()):
            continue
        if any(axis < 2 and step != 1 for axis, (_, _, step) in parameters.items()) or 0 in parameters:
            outcome.skipped.append(f"{node.name}: strided slice over the batch or channel axis")
            continue
        kernel, stride = [1, 1], [1, 1]
        for axis in (2, 3):
            start, _, step = parameters.get(axis, (0, shape[axis], 1))
            kernel[axis - 2], stride[axis - 2] = start + 1, step
        if max(stride) > 8 or max(kernel) > 32 or min(stride) < 1:
            outcome.skipped.append(f"{node.name}: slice steps {stride} beyond a DLA convolution's stride")
            continue
        source = node.inputs[0]
        if 1 in parameters:  # channels first, with a plain (DLA) slice
            start, end, _ = parameters[1]
            channels = [shape[0], len(range(*slice(start, end).indices(shape[1]))), *shape[2:]]
            picked = edit.variable(f"{node.name}_channels", source, channels)
            inputs = [source] + [edit.constant(f"{node.name}_{k}", np.array([v], np.int64))
                                 for k, v in (("start", start), ("end", end), ("axis", 1))]
            edit.node("Slice", f"{node.name}_channels", inputs, [picked])
            source, shape = picked, channels
        conv_h = (shape[2] - kernel[0]) // stride[0] + 1
        conv_w = (shape[3] - kernel[1]) // stride[1] + 1
        if [conv_h, conv_w] != list(out_shape[2:]):
            outcome.skipped.append(f"{node.name}: slice end is not the end of the axis")
            continue
        weight = np.zeros((shape[1], 1, kernel[0], kernel[1]), np.float32)
        weight[:, 0, kernel[0] - 1, kernel[1] - 1] = 1.0
        edit.node("Conv", f"{node.name}_conv", [source, edit.constant(f"{node.name}_pick", weight)],
                  [_detach(node)], kernel_shape=kernel, strides=stride, group=shape[1])
        detail = f"depthwise Conv kernel {kernel} stride {stride} picking one pixel per block"
        outcome.applied.append(Rewrite("strided-slice-to-conv", node.name, detail))


BROADCAST_OPS = ("Add", "Sub", "Mul", "Max", "Min", "Div", "Pow")
MAX_NEAREST_SCALE = 32  # DLA nearest Resize (rules.py, rule "resize")


def fix_broadcast(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    """x * gate with gate [N, C, 1, 1] (squeeze-and-excitation): expand the gate with nearest Resizes by
    integer scales, so both operands have the same shape. Nearest upsampling repeats values: exact."""
    for node in list(graph.nodes):
        inputs = [t for t in node.inputs if t.name]
        if node.op not in BROADCAST_OPS or len(inputs) != 2 or any(is_constant(t) for t in inputs):
            continue
        output = shape_of(node.outputs[0])
        shapes = [shape_of(t) for t in inputs]
        if not is_static(output) or len(output) != 4 or not all(is_static(x) and len(x) == 4 for x in shapes):
            continue
        small = [i for i, x in enumerate(shapes) if list(x) != list(output)]
        if len(small) != 1:
            continue
        index = small[0]
        shape = shapes[index]
        if list(shape[:2]) != list(output[:2]) or output[2] % shape[2] or output[3] % shape[3]:
            outcome.skipped.append(f"{node.name}: broadcast {list(shape)} -> {list(output)} is not spatial")
            continue
        factors_h = split_window(output[2] // shape[2], MAX_NEAREST_SCALE)
        factors_w = split_window(output[3] // shape[3], MAX_NEAREST_SCALE)
        if factors_h is None or factors_w is None:
            outcome.skipped.append(f"{node.name}: scales do not factor into nearest Resizes <= 32")
            continue
        tensor, current = inputs[index], list(shape)
        for step, (fh, fw) in enumerate(_pair(factors_h, factors_w)):
            current = [current[0], current[1], current[2] * fh, current[3] * fw]
            expanded = edit.variable(f"{node.name}_expand{step}", tensor, current)
            scales = edit.constant(f"{node.name}_scales{step}", np.array([1, 1, fh, fw], np.float32))
            resize_inputs = [tensor, gs.Variable.empty(), scales]
            edit.node("Resize", f"{node.name}_expand{step}", resize_inputs, [expanded], mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            tensor = expanded
        node.inputs[node.inputs.index(inputs[index])] = tensor
        detail = f"operand {list(shape)} expanded to {list(output)} by nearest Resize"
        outcome.applied.append(Rewrite("broadcast-to-resize", node.name, detail))


def fix_matmul(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    for node in list(graph.nodes):
        if node.op not in ("MatMul", "Gemm"):
            continue
        data, weights = node.inputs[0], node.inputs[1]
        if is_constant(data) or not is_constant(weights):
            outcome.skipped.append(f"{node.name}: weights are not a constant second input")
            continue
        shape, matrix = shape_of(data), constant_value(weights).astype(np.float32)
        if not is_static(shape) or len(shape) < 2 or matrix.ndim != 2:
            outcome.skipped.append(f"{node.name}: needs a static input of rank >= 2 and 2-D weights")
            continue
        bias = None
        if node.op == "Gemm":
            if int(node.attrs.get("transA", 0)) or len(shape) != 2:
                outcome.skipped.append(f"{node.name}: Gemm with transposed or non-2-D input")
                continue
            if int(node.attrs.get("transB", 0)):
                matrix = matrix.T
            matrix = matrix * float(node.attrs.get("alpha", 1.0))
            bias_input = input_at(node, 2)
            if bias_input is not None:
                value = constant_value(bias_input)
                if value is None or value.size not in (1, matrix.shape[1]):
                    outcome.skipped.append(f"{node.name}: Gemm bias is not a constant per-output vector")
                    continue
                beta = float(node.attrs.get("beta", 1.0))
                bias = np.broadcast_to(value.reshape(-1), (matrix.shape[1],)) * beta
        rows = int(np.prod(shape[:-1]))
        inner, outer = matrix.shape
        output = _detach(node)
        flat = edit.reshape(f"{node.name}_to4d", data, [rows, inner, 1, 1])
        conv_out = edit.variable(f"{node.name}_conv_out", data, [rows, outer, 1, 1])
        conv_inputs = [flat, edit.constant(f"{node.name}_weight", matrix.T.reshape(outer, inner, 1, 1))]
        if bias is not None:
            conv_inputs.append(edit.constant(f"{node.name}_bias", bias.astype(np.float32)))
        edit.node("Conv", f"{node.name}_conv", conv_inputs, [conv_out], kernel_shape=[1, 1])
        edit.reshape(f"{node.name}_from4d", conv_out, [*shape[:-1], outer], output)
        detail = f"1x1 Conv {inner}->{outer} on {rows} rows"
        outcome.applied.append(Rewrite("matmul-to-conv", node.name, detail))


def _matching_axis(before: Sequence[int], after: Sequence[int], axis: int) -> int | None:
    """The axis of `before` that a reshape to `after` keeps intact as `after`'s axis, or None."""
    leading = int(np.prod(after[:axis]))
    for index in range(len(before)):
        if int(np.prod(before[:index])) == leading and before[index] == after[axis]:
            return index
    return None


def _move_softmax_up(edit: _Editor, node: gs.Node, opset: int, outcome: FixOutcome) -> bool:
    """Softmax(Transpose(x)) -> Transpose(Softmax(x)); Softmax(Reshape(x)) -> Reshape(Softmax(x)) when the
    reshape keeps the softmax axis whole. Exact; it brings the Softmax back to a 4-D tensor and the
    transposes/reshapes together, where the clean-ups cancel them."""
    producer = node.inputs[0].inputs[0] if node.inputs[0].inputs else None
    shape = shape_of(node.inputs[0])
    if producer is None or not is_static(shape) or producer.op not in ("Transpose", *RESHAPES):
        return False
    source = producer.inputs[0]
    source_shape = shape_of(source)
    if not is_static(source_shape) or len(source_shape) != 4:
        return False
    rank = len(shape)
    axis = int(node.attrs.get("axis", 1 if opset < 13 else -1)) % rank
    if producer.op == "Transpose":
        perm = list(producer.attrs.get("perm", reversed(range(rank))))
        new_axis = perm[axis]
    else:
        new_axis = _matching_axis(source_shape, shape, axis)
    if new_axis in (None, 0) or (opset < 13 and (axis != rank - 1 or new_axis != len(source_shape) - 1)):
        return False
    output = _detach(node)
    moved = edit.variable(f"{node.name}_moved", source, source_shape)
    edit.node("Softmax", f"{node.name}_moved", [source], [moved], axis=new_axis)
    if producer.op == "Transpose":
        edit.node("Transpose", f"{producer.name}_after_softmax", [moved], [output], perm=perm)
        fix = "softmax-transposed-axis"
    else:
        edit.reshape(f"{producer.name}_after_softmax", moved, shape, output)
        fix = "softmax-before-reshape"
    detail = f"Softmax on axis {new_axis} of the 4-D tensor before the {producer.op}"
    outcome.applied.append(Rewrite(fix, node.name, detail))
    return True


def fix_softmax_placement(graph: gs.Graph, edit: _Editor, outcome: FixOutcome, opset: int) -> None:
    for _ in range(8):  # each round moves every Softmax one Transpose/Reshape up
        moved = [_move_softmax_up(edit, n, opset, outcome) for n in list(graph.nodes) if n.op == "Softmax"]
        graph.cleanup(remove_unused_graph_inputs=False)
        if not any(moved):
            return


# --- clean-ups (exact) ----------------------------------------------------------------------------------


def _bypass(graph: gs.Graph, edit: _Editor, node: gs.Node, source: gs.Tensor) -> None:
    """Make node's consumers read `source` instead; keeps graph output names via an Identity."""
    output = _detach(node)
    if output in graph.outputs:
        if source.inputs and source not in graph.outputs:  # the source takes over the output's name
            name = output.name
            output.name = edit.name(f"{name}_replaced")
            source.name = name
            graph.outputs[graph.outputs.index(output)] = source
        else:
            edit.node("Identity", node.name + "_identity", [source], [output])
        return
    for consumer in list(output.outputs):
        for index, tensor in enumerate(consumer.inputs):
            if tensor is output:
                consumer.inputs[index] = source


RESHAPES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def clean_reshapes(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    """Drop reshapes that restore a shape their input already had (e.g. Flatten, then back to 4-D)."""
    for node in list(graph.nodes):
        if node.op not in RESHAPES or not node.outputs:
            continue
        target = shape_of(node.outputs[0])
        source = node.inputs[0]
        while source.inputs and source.inputs[0].op in RESHAPES:
            source = source.inputs[0].inputs[0]
        if is_static(target) and shape_of(source) == target and source is not node.inputs[0]:
            _bypass(graph, edit, node, source)
            outcome.applied.append(Rewrite("cancel-reshapes", node.name, f"reshapes back to {list(target)}"))
        elif is_static(target) and shape_of(node.inputs[0]) == target:
            _bypass(graph, edit, node, node.inputs[0])
            outcome.applied.append(Rewrite("cancel-reshapes", node.name, "reshape to the same shape"))


def clean_transposes(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    """Transpose(p) then Transpose(q): drop both when they cancel, else merge into one."""
    for node in list(graph.nodes):
        if node.op != "Transpose" or not node.outputs or not node.inputs[0].inputs:
            continue
        first = node.inputs[0].inputs[0]
        if first.op != "Transpose":
            continue
        p, q = list(first.attrs.get("perm", [])), list(node.attrs.get("perm", []))
        if not p or not q or len(p) != len(q):
            continue
        merged = [p[i] for i in q]
        if merged == list(range(len(merged))):
            _bypass(graph, edit, node, first.inputs[0])
            outcome.applied.append(Rewrite("cancel-transposes", node.name, f"{p} then {q} cancel"))
        else:
            node.inputs[0] = first.inputs[0]
            node.attrs["perm"] = merged
            outcome.applied.append(Rewrite("merge-transposes", node.name, f"{p} then {q} = {merged}"))


# --- the approximate rewrite ----------------------------------------------------------------------------


def fix_resize_nearest(graph: gs.Graph, edit: _Editor, outcome: FixOutcome) -> None:
    for node in graph.nodes:
        if node.op not in ("Resize", "Upsample"):
            continue
        mode = node.attrs.get("mode", "nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("linear", "bilinear"):
            continue
        node.attrs["mode"] = "nearest"
        if node.op == "Resize":
            node.attrs["coordinate_transformation_mode"] = "asymmetric"
            node.attrs["nearest_mode"] = "floor"
        outcome.applied.append(Rewrite("resize-nearest", node.name, f"{mode} -> nearest", exact=False))


# --- driver ---------------------------------------------------------------------------------------------


def _export(graph: gs.Graph) -> onnx.ModelProto:
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    model = gs.export_onnx(graph)
    lower_ir_version(model)
    return onnx.shape_inference.infer_shapes(model, data_prop=True)


def _run_passes(model: onnx.ModelProto, passes: list[Callable], outcome: FixOutcome) -> onnx.ModelProto:
    for fix in passes:
        graph = gs.import_onnx(model)
        fix(graph, _Editor(graph), outcome)
        model = _export(graph)
    return model


FOLD_SIZE_LIMIT = 1 << 20  # bytes: larger folded constants would bloat the written model


def fix_model(
    model_or_path: onnx.ModelProto | str | Path,
    approximate: bool = False,
    input_shapes: dict[str, Sequence[int]] | None = None,
) -> tuple[FixOutcome, FixOutcome]:
    """Apply the exact rewrites, then (when asked) the approximate ones.

    Returns (exact, approximate): the exact outcome's model keeps the function (for the given
    `input_shapes`, which become the model's static input shapes); the approximate outcome's model (the
    exact one when `approximate` is False) adds the numerically changing rewrites.
    """
    loaded = load_graph(model_or_path, input_shapes=input_shapes, fold_size_limit=FOLD_SIZE_LIMIT)
    opset = loaded.opset
    model = gs.export_onnx(loaded.graph)
    lower_ir_version(model)
    exact = FixOutcome(model)
    passes: list[Callable] = [
        lambda g, e, o: fix_softmax_placement(g, e, o, opset),
        fix_global_pooling,
        lambda g, e, o: fix_reduce_mean(g, e, o, opset),
        fix_large_pooling,
        fix_strided_slice,
        fix_matmul,
        fix_broadcast,
        clean_reshapes,
        clean_transposes,
        clean_reshapes,
    ]
    exact.model = _run_passes(model, passes, exact)
    onnx.checker.check_model(exact.model)
    approximated = FixOutcome(exact.model)
    if approximate:
        approximated.model = _run_passes(exact.model, [fix_resize_nearest], approximated)
        onnx.checker.check_model(approximated.model)
    return exact, approximated
