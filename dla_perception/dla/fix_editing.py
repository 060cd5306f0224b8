"""What every --fix rewrite shares: the record of what it did, fresh names, and splicing new nodes into an
onnx-graphsurgeon graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs


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


class Namer:
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


class Editor:
    """Small helpers to splice chains of new nodes into a graph."""

    def __init__(self, graph: gs.Graph):
        self.graph = graph
        self.name = Namer(graph)

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


def detach(node: gs.Node) -> gs.Tensor:
    """Disconnect a node from its outputs (cleanup removes it) and return its first output."""
    output = node.outputs[0]
    node.outputs.clear()
    return output
