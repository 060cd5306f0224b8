"""A fixed machine reference workload, timed beside each CPU engine run, so the gate can divide load out.

On a shared machine a CPU engine's run time moves with what else runs: other processes take time slices
(wall time), and they also cost the engine CPU time (onnxruntime's parallel sections wait for a
preempted pool thread, caches are shared; measured 10.5 -> 16.8 ms median CPU time of the same run under
load). A figure of the engine alone cannot tell that from a slower model. The reference is a small,
deterministic convolution network (seeded weights, fixed input, ~2-3 ms) run through the same engine
class, with the same session options and intra-op thread count as the engine it follows, on the same
worker thread right after that engine's run: it meets the same contention at the same moment, so the
ratio of the two moves with the model and not with the machine (docs/replay.md, "Regression gate").
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_VERSION = 1  # bump when the network changes: baselines of another version are not comparable
# (in channels, out channels, stride) of 3x3 convolutions (+ReLU) on a 1x8x120x160 input: sizes like the
# proximity feature network's, large enough for onnxruntime to split them over its intra-op threads.
REFERENCE_LAYERS = ((8, 16, 1), (16, 16, 1), (16, 32, 2))
REFERENCE_INPUT = (1, 8, 120, 160)
REFERENCE_SEED = 20260


def reference_model() -> bytes:
    """The reference network as ONNX bytes; identical on every call and every machine."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(REFERENCE_SEED)
    nodes, weights, tensor = [], [], "input"
    for k, (inputs, outputs, stride) in enumerate(REFERENCE_LAYERS):
        weight = numpy_helper.from_array(
            (rng.standard_normal((outputs, inputs, 3, 3)) * (2.0 / (9 * inputs)) ** 0.5).astype(np.float32),
            f"conv{k}.weight")
        weights.append(weight)
        nodes.append(helper.make_node("Conv", [tensor, weight.name], [f"conv{k}"], pads=[1, 1, 1, 1],
                                      strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"conv{k}"], [f"relu{k}"]))
        tensor = f"relu{k}"
    graph = helper.make_graph(
        nodes, "machine_reference",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(REFERENCE_INPUT))],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the package supports (>= 1.18)
    return model.SerializeToString()


def reference_description() -> dict[str, Any]:
    """What metrics.json says the reference was (a baseline of another version is not comparable)."""
    return {"version": REFERENCE_VERSION, "network": "conv3x3+relu " + ", ".join(
        f"{i}->{o}/{s}" for i, o, s in REFERENCE_LAYERS), "input": list(REFERENCE_INPUT)}


class ReferenceWorkload:
    """The reference network in an onnxruntime CPU engine; `time()` runs it once: (wall ms, CPU ms).

    CPU time is the process's (time.process_time), as the engine runs' cpu_ms, so both count the
    intra-op pool threads' work and their waiting alike.
    """

    def __init__(self, intra_op_threads: int | None = None) -> None:
        from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine

        with tempfile.TemporaryDirectory(prefix="dla_reference_") as folder:
            path = Path(folder) / f"machine_reference_v{REFERENCE_VERSION}.onnx"
            path.write_bytes(reference_model())
            self.engine = OnnxRuntimeEngine(path, model="machine_reference", core="cpu",
                                            intra_op_threads=intra_op_threads)
        self.intra_op_threads = self.engine.intra_op_threads
        self._inputs = {"input": np.random.default_rng(REFERENCE_SEED).random(REFERENCE_INPUT,
                                                                              dtype=np.float32)}
        self.engine.run(self._inputs)  # first-run allocations are not part of any sample

    def time(self) -> tuple[float, float]:
        started, cpu_started = time.perf_counter(), time.process_time()
        self.engine.run(self._inputs)
        return (time.perf_counter() - started) * 1e3, (time.process_time() - cpu_started) * 1e3

    def close(self) -> None:
        self.engine.close()


class ReferencePool:
    """One reference per intra-op thread count, built on first use and shared by a manager's engines
    (lock-step replays run one engine at a time; onnxruntime sessions may be run from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._references: dict[int | None, ReferenceWorkload] = {}

    def get(self, intra_op_threads: int | None) -> ReferenceWorkload:
        with self._lock:
            reference = self._references.get(intra_op_threads)
            if reference is None:
                reference = self._references[intra_op_threads] = ReferenceWorkload(intra_op_threads)
            return reference
