"""Helpers for the detection tests: tiny real ONNX models whose outputs are known constants.

Output = constant + 0 * mean(input): a genuine ONNX graph that onnxruntime runs, so the whole pipeline
(pre-processing, engine manager, decoding, mapping back) is exercised with hand-computable answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def constant_detector(path: Path, input_shape: tuple[int, ...], outputs: dict[str, np.ndarray],
                      input_name: str = "images") -> Path:
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"])]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    graph_outputs = []
    for name, value in outputs.items():
        value = np.asarray(value, dtype=np.float32)
        initializers.append(numpy_helper.from_array(value, f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph_input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))
    graph = helper.make_graph(nodes, "constant_detector", [graph_input], graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
