"""A model made twice as slow for the latency gate's tests: the same network computed twice per run.

The copy reads the inputs through a Mul by a number next to 1 (onnxruntime's common-subexpression pass
would otherwise merge it with the original), and its outputs join the originals' through `+ 0 * copy`,
so the outputs are bit-identical while the work doubles (real compute, not a sleep: load slows it alike).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def write_twice_as_slow(source: Path, target: Path) -> Path:
    model = onnx.load(str(source))
    graph = model.graph
    prefix = "slow_copy/"
    inputs = {i.name for i in graph.input}
    initializers = {i.name for i in graph.initializer}
    new_nodes = list(graph.node)
    nudge = numpy_helper.from_array(np.array(1.0 + 2.0**-20, dtype=np.float32), prefix + "nudge")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), prefix + "zero")
    graph.initializer.extend([nudge, zero])
    for name in inputs:
        new_nodes.append(helper.make_node("Mul", [name, nudge.name], [prefix + name]))

    def renamed(tensor: str) -> str:
        if tensor == "" or tensor in initializers:
            return tensor
        return prefix + tensor

    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + node.name
        copy.input[:] = [renamed(t) for t in node.input]
        copy.output[:] = [renamed(t) for t in node.output]
        new_nodes.append(copy)
    outputs = []
    for output in graph.output:
        original = prefix + "orig/" + output.name
        for node in new_nodes[: len(graph.node)]:
            node.output[:] = [original if t == output.name else t for t in node.output]
            node.input[:] = [original if t == output.name else t for t in node.input]
        scaled = prefix + "scaled/" + output.name
        new_nodes.append(helper.make_node("Mul", [prefix + output.name, zero.name], [scaled]))
        new_nodes.append(helper.make_node("Add", [original, scaled], [output.name]))
        outputs.append(output)
    del graph.node[:]
    graph.node.extend(new_nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target
