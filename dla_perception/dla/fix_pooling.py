"""Exact rewrites of pooling the DLA cannot run into chains of pools it can: global pooling and ReduceMean
over H/W, and MaxPool / AveragePool windows over 8."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from dla_perception.dla.fix_editing import Editor, FixOutcome, Rewrite, detach
from dla_perception.dla.graph import constant_value, input_at, is_static, shape_of

MAX_WINDOW = 8  # DLA pooling window limit (rules.py, rule "pooling")


MAX_PADDING = 7


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


def pair_factors(first: list[int], second: list[int]) -> list[tuple[int, int]]:
    length = max(len(first), len(second))
    first, second = first + [1] * (length - len(first)), second + [1] * (length - len(second))
    return list(zip(first, second, strict=True))


def _pool_chain(edit: Editor, op: str, base: str, tensor, windows, output) -> None:
    """Non-overlapping pools (stride = window) one after another; the last writes `output`."""
    shape = list(shape_of(tensor))
    for index, (kh, kw) in enumerate(windows):
        shape = [shape[0], shape[1], shape[2] // kh, shape[3] // kw]
        last = index == len(windows) - 1
        out = output if last else edit.variable(f"{base}_pool{index}", tensor, shape)
        edit.node(op, f"{base}_pool{index}", [tensor], [out], kernel_shape=[kh, kw], strides=[kh, kw])
        tensor = out


def fix_global_pooling(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
        windows = pair_factors(split_h, split_w)
        op = "AveragePool" if node.op == "GlobalAveragePool" else "MaxPool"
        _pool_chain(edit, op, node.name, node.inputs[0], windows, detach(node))
        outcome.applied.append(Rewrite("global-pooling", node.name, f"{op} windows {windows}"))


def fix_reduce_mean(graph: gs.Graph, edit: Editor, outcome: FixOutcome, opset: int) -> None:
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
        windows = pair_factors(split_h, split_w)
        output = detach(node)
        if int(node.attrs.get("keepdims", 1)):
            _pool_chain(edit, "AveragePool", node.name, node.inputs[0], windows, output)
        else:
            pooled_shape = [shape[0], shape[1], shape[2] // window_h, shape[3] // window_w]
            pooled = edit.variable(f"{node.name}_pooled", node.inputs[0], pooled_shape)
            _pool_chain(edit, "AveragePool", node.name, node.inputs[0], windows, pooled)
            kept = [d for i, d in enumerate(pooled_shape) if i not in axes]
            edit.reshape(f"{node.name}_squeeze", pooled, kept, output)
        outcome.applied.append(Rewrite("reduce-mean", node.name, f"AveragePool windows {windows}"))


def fix_large_pooling(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
            windows = pair_factors(split_h, split_w)
            _pool_chain(edit, "AveragePool", node.name, node.inputs[0], windows, detach(node))
            outcome.applied.append(Rewrite("large-pooling", node.name, f"AveragePool windows {windows}"))
        else:
            outcome.skipped.append(
                f"{node.name}: overlapping or padded AveragePool {kernel}: no exact split into windows <= 8"
            )


def _split_max_pool(edit: Editor, node: gs.Node, kernel, strides, pads, outcome: FixOutcome) -> None:
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
    output = detach(node)
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
