"""Rewrites of operators the DLA lacks into ones it runs: strided slices and constant-weight MatMul / Gemm
into convolutions, spatial broadcasts into nearest Resizes (exact); bilinear Resize into nearest (approximate,
only on request)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_graphsurgeon as gs

from dla_perception.dla.fix_editing import Editor, FixOutcome, Rewrite, detach
from dla_perception.dla.fix_pooling import pair_factors, split_window
from dla_perception.dla.graph import constant_value, input_at, is_constant, is_static, shape_of


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


def fix_strided_slice(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
                  [detach(node)], kernel_shape=kernel, strides=stride, group=shape[1])
        detail = f"depthwise Conv kernel {kernel} stride {stride} picking one pixel per block"
        outcome.applied.append(Rewrite("strided-slice-to-conv", node.name, detail))


BROADCAST_OPS = ("Add", "Sub", "Mul", "Max", "Min", "Div", "Pow")


MAX_NEAREST_SCALE = 32  # DLA nearest Resize (rules.py, rule "resize")


def fix_broadcast(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
        for step, (fh, fw) in enumerate(pair_factors(factors_h, factors_w)):
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


def fix_matmul(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
        output = detach(node)
        flat = edit.reshape(f"{node.name}_to4d", data, [rows, inner, 1, 1])
        conv_out = edit.variable(f"{node.name}_conv_out", data, [rows, outer, 1, 1])
        conv_inputs = [flat, edit.constant(f"{node.name}_weight", matrix.T.reshape(outer, inner, 1, 1))]
        if bias is not None:
            conv_inputs.append(edit.constant(f"{node.name}_bias", bias.astype(np.float32)))
        edit.node("Conv", f"{node.name}_conv", conv_inputs, [conv_out], kernel_shape=[1, 1])
        edit.reshape(f"{node.name}_from4d", conv_out, [*shape[:-1], outer], output)
        detail = f"1x1 Conv {inner}->{outer} on {rows} rows"
        outcome.applied.append(Rewrite("matmul-to-conv", node.name, detail))


def fix_resize_nearest(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
