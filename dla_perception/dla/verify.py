"""Check that a rewritten graph computes what the original did: both run in onnxruntime on the same
random inputs, and the largest absolute difference over all outputs is reported."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import onnx

from dla_perception.dla.graph import lower_ir_version

# Exact rewrites only reorder float additions (pool chains, 1x1 convolutions): allow rounding noise.
EXACT_TOLERANCE = 1e-4


@dataclass
class Comparison:
    max_abs_diff: float
    per_output: dict[str, float]
    tolerance: float
    trials: int

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def as_dict(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "per_output": dict(self.per_output),
            "tolerance": self.tolerance,
            "trials": self.trials,
            "passed": self.passed,
        }


def random_inputs(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One random array per graph input (not initializers); dynamic dimensions become 1."""
    initializers = {init.name for init in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def _session(model: onnx.ModelProto):
    import onnxruntime

    model = copy.deepcopy(model)
    lower_ir_version(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def compare(
    reference: onnx.ModelProto,
    candidate: onnx.ModelProto,
    trials: int = 2,
    seed: int = 0,
    tolerance: float = EXACT_TOLERANCE,
) -> Comparison:
    """Largest absolute output difference between two models over `trials` random inputs.

    Inputs are drawn with the candidate's input shapes: a rewrite may have fixed dynamic dimensions."""
    first, second = _session(reference), _session(candidate)
    names = [o.name for o in first.get_outputs()]
    missing = set(names) - {o.name for o in second.get_outputs()}
    if missing:
        raise ValueError(f"the rewritten model lost outputs {sorted(missing)}")
    rng = np.random.default_rng(seed)
    worst = dict.fromkeys(names, 0.0)
    for _ in range(trials):
        feeds = random_inputs(candidate, rng)  # the candidate's shapes may be the more specific ones
        expected = dict(zip(names, first.run(names, feeds), strict=True))
        actual = dict(zip(names, second.run(names, feeds), strict=True))
        for name in names:
            a, b = np.asarray(expected[name], np.float64), np.asarray(actual[name], np.float64)
            if a.shape != b.shape:
                raise ValueError(f"output '{name}' changed shape {a.shape} -> {b.shape}")
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            worst[name] = max(worst[name], diff)
    return Comparison(max(worst.values(), default=0.0), worst, tolerance, trials)
