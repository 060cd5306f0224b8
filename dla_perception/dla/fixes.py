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

The rewrites live by job in fix_pooling.py, fix_operators.py and fix_layout.py (their shared editing helpers
in fix_editing.py); this module runs them in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import onnx
import onnx_graphsurgeon as gs

from dla_perception.dla.fix_editing import Editor, FixOutcome
from dla_perception.dla.fix_layout import clean_reshapes, clean_transposes, fix_softmax_placement
from dla_perception.dla.fix_operators import fix_broadcast, fix_matmul, fix_resize_nearest, fix_strided_slice
from dla_perception.dla.fix_pooling import fix_global_pooling, fix_large_pooling, fix_reduce_mean
from dla_perception.dla.graph import load_graph, lower_ir_version


def _export(graph: gs.Graph) -> onnx.ModelProto:
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    model = gs.export_onnx(graph)
    lower_ir_version(model)
    return onnx.shape_inference.infer_shapes(model, data_prop=True)


def _run_passes(model: onnx.ModelProto, passes: list[Callable], outcome: FixOutcome) -> onnx.ModelProto:
    for fix in passes:
        graph = gs.import_onnx(model)
        fix(graph, Editor(graph), outcome)
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
