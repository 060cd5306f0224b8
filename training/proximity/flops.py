"""Parameters and arithmetic of the proximity ONNX files, counted from the graphs that actually run.

    python -m training.proximity.flops models/proximity [models/proximity/v1] [--planes 5]

FLOPs are 2 x multiply-accumulates of Conv and ConvTranspose (the fixed one-hot shifts of the v2 head
included: they run), plus one per output element of Mul/Add/Sigmoid/Relu/AveragePool. Per plane = the
head's count / its batch; per frame = features once + the head once per call, calls = ceil(planes / batch)
(padded slots run too), as the pipeline calls them. Parameters are the initializers' element counts
(fixed weights included; `trainable` leaves out the v2 head's one-hot shift and group-sum weights).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def _shapes(model) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def count(path: Path) -> dict:
    """{'flops', 'parameters', 'fixed_parameters', 'batch'} of one ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    shapes = _shapes(model)
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    flops = 0
    fixed = 0
    for node in model.graph.node:
        out = shapes.get(node.output[0], [])
        elements = int(np.prod(out)) if out else 0
        if node.op_type in ("Conv", "ConvTranspose"):
            weight = shapes[node.input[1]]
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if node.op_type == "Conv":
                macs = elements * (weight[1] * int(np.prod(weight[2:])))
            else:  # ConvTranspose: every input element meets every weight of its output channels
                inp = shapes[node.input[0]]
                macs = int(np.prod(inp)) * weight[1] * int(np.prod(weight[2:])) // max(group, 1)
            flops += 2 * macs
            w = initializers.get(node.input[1])
            if w is not None and np.all((w == 0) | (w == w.flat[np.argmax(np.abs(w))])) and group > 1:
                fixed += w.size  # one-hot shifts and group sums: fixed by construction
        elif node.op_type in ("Mul", "Add", "Sigmoid", "Relu", "AveragePool", "Sub"):
            flops += elements
    parameters = int(sum(v.size for v in initializers.values()))
    batch = shapes[model.graph.input[0].name][0]
    return {
        "flops": int(flops),
        "parameters": parameters,
        "trainable_parameters": parameters - fixed,
        "batch": int(batch),
    }


def report(model_dir: Path, planes: int = 5) -> dict:
    features, head = count(model_dir / "features.onnx"), count(model_dir / "head.onnx")
    calls = math.ceil(planes / head["batch"])
    return {
        "model": str(model_dir),
        "features": features,
        "head": head,
        "head_flops_per_plane": head["flops"] // head["batch"],
        "planes": planes,
        "head_calls": calls,
        "flops_per_frame": features["flops"] + calls * head["flops"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--planes", type=int, default=5, help="distances asked per frame (alert included)")
    args = parser.parse_args()
    print(json.dumps([report(m, args.planes) for m in args.models], indent=1))


if __name__ == "__main__":
    main()
