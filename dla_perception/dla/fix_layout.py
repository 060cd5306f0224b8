"""Exact rewrites of tensor layout: Softmax moved back onto the 4-D tensor in front of Transposes/Reshapes,
and the reshapes and transposes that then cancel or merge cleaned up."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_graphsurgeon as gs

from dla_perception.dla.fix_editing import Editor, FixOutcome, Rewrite, detach
from dla_perception.dla.graph import is_static, shape_of


def _matching_axis(before: Sequence[int], after: Sequence[int], axis: int) -> int | None:
    """The axis of `before` that a reshape to `after` keeps intact as `after`'s axis, or None."""
    leading = int(np.prod(after[:axis]))
    for index in range(len(before)):
        if int(np.prod(before[:index])) == leading and before[index] == after[axis]:
            return index
    return None


def _move_softmax_up(edit: Editor, node: gs.Node, opset: int, outcome: FixOutcome) -> bool:
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
    output = detach(node)
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


def fix_softmax_placement(graph: gs.Graph, edit: Editor, outcome: FixOutcome, opset: int) -> None:
    for _ in range(8):  # each round moves every Softmax one Transpose/Reshape up
        moved = [_move_softmax_up(edit, n, opset, outcome) for n in list(graph.nodes) if n.op == "Softmax"]
        graph.cleanup(remove_unused_graph_inputs=False)
        if not any(moved):
            return


def _bypass(graph: gs.Graph, edit: Editor, node: gs.Node, source: gs.Tensor) -> None:
    """Make node's consumers read `source` instead; keeps graph output names via an Identity."""
    output = detach(node)
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


def clean_reshapes(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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


def clean_transposes(graph: gs.Graph, edit: Editor, outcome: FixOutcome) -> None:
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
