"""Load an ONNX model the way TensorRT sees it: shapes inferred, constant and shape subgraphs folded.

TensorRT's parser evaluates everything that depends only on weights and static shapes at build time, so
those nodes never become layers. We fold the same way (onnx-graphsurgeon's constant folding, evaluated by
onnxruntime) and remember which nodes disappeared, so the report can say "folded" instead of "GPU".
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

Shape = tuple  # of int (static) or str/None (dynamic or unknown)

# onnx-graphsurgeon logs folding hiccups as warnings on stdout; the analysis reports what matters itself.
gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR


@dataclass
class LoadedGraph:
    graph: gs.Graph  # folded, shapes inferred, topologically sorted
    opset: int
    source: str  # path or "<model>"
    original_nodes: list[tuple[str, str]]  # (name, op) of every node before folding, in order
    folded: dict[str, str] = field(default_factory=dict)  # name -> op of nodes folded away
    warnings: list[str] = field(default_factory=list)


def load_model(model_or_path: onnx.ModelProto | str | Path) -> tuple[onnx.ModelProto, str]:
    """A private copy of the model and a printable name for it; ValueError for unreadable input."""
    if isinstance(model_or_path, onnx.ModelProto):
        model, source = copy.deepcopy(model_or_path), "<model>"
    else:
        path = Path(model_or_path)
        if not path.is_file():
            raise ValueError(f"no ONNX file at {path}")
        try:
            model, source = onnx.load(str(path)), str(path)
        except Exception as exc:  # protobuf raises a variety of errors on non-ONNX bytes
            raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc
    if not model.graph.node:
        raise ValueError(f"{source} has no nodes")
    lower_ir_version(model)
    return model, source


def lower_ir_version(model: onnx.ModelProto) -> None:
    """Use the lowest IR version the opsets allow: a fresh onnx writes IR versions that onnxruntime (used
    for folding and verification) and TensorRT's parser do not read yet; the graph is unchanged."""
    try:
        needed = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    except Exception:
        return
    model.ir_version = min(model.ir_version, max(needed, 3))


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every node a unique name so reports and rewrites can refer to it."""
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        while name in seen:
            name = f"{name}_{index}"
        node.name = name
        seen.add(name)


def infer_shapes(model: onnx.ModelProto, warnings: list[str]) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        warnings.append(f"ONNX shape inference failed ({exc}); shapes are unknown where not declared")
        return model


def set_input_shapes(model: onnx.ModelProto, input_shapes: dict[str, Sequence[int]]) -> None:
    """Fix graph input dimensions (what an optimisation profile with min = opt = max does for TensorRT).

    Inferred shapes recorded in the file are dropped so that inference starts from the new inputs.
    ValueError for an unknown input name or a rank that does not match.
    """
    inputs = {value.name: value for value in model.graph.input}
    for name, dims in input_shapes.items():
        if name not in inputs:
            raise ValueError(f"no graph input named {name!r} (inputs: {', '.join(inputs)})")
        shape = inputs[name].type.tensor_type.shape
        if len(shape.dim) != len(dims):
            raise ValueError(f"input {name!r} has rank {len(shape.dim)}, got shape {list(dims)}")
        for dim, size in zip(shape.dim, dims, strict=True):
            if int(size) < 1:
                raise ValueError(f"input {name!r}: dimensions must be >= 1, got {list(dims)}")
            dim.Clear()
            dim.dim_value = int(size)
    del model.graph.value_info[:]
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")


def load_graph(
    model_or_path: onnx.ModelProto | str | Path,
    fold: bool = True,
    input_shapes: dict[str, Sequence[int]] | None = None,
    fold_size_limit: int | None = None,
) -> LoadedGraph:
    """The model as TensorRT's parser sees it; `fold_size_limit` (bytes) keeps larger constants unfolded."""
    model, source = load_model(model_or_path)
    if input_shapes:
        set_input_shapes(model, input_shapes)
    name_nodes(model)
    warnings: list[str] = []
    original = [(node.name, node.op_type) for node in model.graph.node]
    model = infer_shapes(model, warnings)
    graph = gs.import_onnx(model)
    if fold:
        try:
            for _ in range(4):  # folding shapes exposes more constants: repeat until nothing changes
                count = len(graph.nodes)
                graph.fold_constants(fold_shapes=True, error_ok=True, size_threshold=fold_size_limit)
                graph.cleanup(remove_unused_graph_inputs=False)
                if len(graph.nodes) == count:
                    break
            model = infer_shapes(gs.export_onnx(graph), warnings)
            graph = gs.import_onnx(model)
        except Exception as exc:
            warnings.append(f"constant folding failed ({exc}); analysing the graph unfolded")
            graph = gs.import_onnx(infer_shapes(model, warnings))
    graph.toposort()
    remaining = {node.name for node in graph.nodes}
    folded = {name: op for name, op in original if name not in remaining}
    return LoadedGraph(graph, default_opset(model), source, original, folded, warnings)


# --- small helpers the checkers share ---------------------------------------------------------------------


def is_constant(tensor: gs.Tensor) -> bool:
    """Constant at build time: an initializer, a Constant node's output, or quantized constant weights
    (a DequantizeLinear of a constant, which constant folding leaves in place for Q/DQ models)."""
    if isinstance(tensor, gs.Constant):
        return True
    if len(tensor.inputs) != 1:
        return False
    producer = tensor.inputs[0]
    if producer.op == "DequantizeLinear":
        return bool(producer.inputs) and is_constant(producer.inputs[0])
    return producer.op == "Constant"


def constant_value(tensor: gs.Tensor | None) -> np.ndarray | None:
    """The value of a constant tensor (initializer or Constant node), else None."""
    if tensor is None:
        return None
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == "Constant":
        value = tensor.inputs[0].attrs.get("value")
        if isinstance(value, gs.Constant):
            return np.asarray(value.values)
        if value is not None:
            return np.asarray(value)
    return None


def present(tensor: gs.Tensor | None) -> bool:
    """False for the empty name ONNX uses to skip an optional input."""
    return tensor is not None and bool(tensor.name)


def input_at(node: gs.Node, index: int) -> gs.Tensor | None:
    if index < len(node.inputs) and present(node.inputs[index]):
        return node.inputs[index]
    return None


def shape_of(tensor: gs.Tensor) -> Shape | None:
    if isinstance(tensor, gs.Constant):
        return tuple(int(d) for d in tensor.values.shape)
    value = constant_value(tensor)
    if value is not None:
        return tuple(value.shape)
    if tensor.shape is None:
        return None
    return tuple(tensor.shape)


def is_static(shape: Shape | None) -> bool:
    return shape is not None and all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape)


def activations(node: gs.Node) -> list[gs.Tensor]:
    """The computed (non-constant) inputs of a node."""
    return [t for t in node.inputs if present(t) and not is_constant(t)]
