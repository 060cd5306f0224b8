"""Engine manager cost and scaling on the onnxruntime CPU backend.

    python benchmarks/bench_runtime.py [--seconds 3] [--repeats 3] [--requests 20000]

Prints one JSON object:
- dispatch_overhead_us: per request, `manager.infer` minus calling the same engine's `run` directly, on a
  trivial model (Relu on 4 floats) so that the difference is the manager's own cost (validation, deadline,
  dispatch, statistics, and the hand-off to the worker thread and back: the engine never runs in the
  caller's thread, which no deadline could free from a hung engine). `dispatch_overhead_queued_us` is the
  same through `submit().result()` (a concurrent.futures.Future instead of infer's one-shot lock).
- throughput_1 / throughput_2: requests/s through the manager on a compute-bound model (MatMul + Tanh
  layers, 256x512, about 7 ms per run on one thread) with one engine vs two engines of one intra-op
  thread each (the second is a second onnxruntime CPU session placed as another core, as two DLA cores
  are), four requests kept in flight; scaling_2 = throughput_2 / throughput_1 (goal >= 1.8 on 2 cores),
  the median of per-pair ratios of alternating runs. cpu_cores_used_1/2: CPU time of this process per
  wall second during those runs (2.0 = both cores busy with our engines), and requests per CPU second
  (equal for 1 and 2 engines = the manager adds no per-request cost as it scales; a lower scaling_2 with
  cpu_cores_used_2 well below 2 means other processes held the second core).
Per-run values and the load average are included because other processes on a shared machine lower
scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dla_perception.runtime.config import EnginesConfig, ModelSpec  # noqa: E402
from dla_perception.runtime.manager import EngineManager  # noqa: E402
from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine  # noqa: E402


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def trivial_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    return save(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]), path)


def compute_model(path: Path, rows: int = 256, width: int = 512, layers: int = 4) -> Path:
    rng = np.random.default_rng(0)
    nodes, weights, current = [], [], "x"
    for index in range(layers):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"w{index}"))
        out = "y" if index == layers - 1 else f"h{index}"
        nodes += [helper.make_node("MatMul", [current, f"w{index}"], [f"m{index}"]),
                  helper.make_node("Tanh", [f"m{index}"], [out])]
        current = out
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, width])
    return save(helper.make_graph(nodes, "compute", [x], [y], weights), path)


def one_thread_cpu_factory(spec: ModelSpec, core: str) -> OnnxRuntimeEngine:
    """A real onnxruntime CPU session with one intra-op thread, whatever core label it is placed as."""
    return OnnxRuntimeEngine(spec.onnx, model=spec.name, core="cpu", intra_op_threads=1)


def dispatch_overhead(path: Path, requests: int, repeats: int, workdir: Path) -> dict:
    spec = ModelSpec("trivial", path, ("cpu",), intra_op_threads=1)
    config = EnginesConfig({"trivial": spec}, workdir, {})
    x = {"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)}
    with EngineManager(config, available_cores=["cpu"], engine_factory=one_thread_cpu_factory) as manager:
        engine = manager._models["trivial"].workers[0].engine
        direct, inline, queued = [], [], []
        for _ in range(repeats):  # interleaved, so machine load affects all three alike
            calls = ((direct, lambda: engine.run(x)), (inline, lambda: manager.infer("trivial", x)),
                     (queued, lambda: manager.submit("trivial", x).result()))
            for samples, call in calls:
                for _ in range(200):
                    call()
                start = time.perf_counter()
                for _ in range(requests):
                    call()
                samples.append((time.perf_counter() - start) / requests * 1e6)
    direct_us, inline_us, queued_us = (float(np.median(v)) for v in (direct, inline, queued))
    return {
        "dispatch_overhead_us": round(inline_us - direct_us, 1),
        "dispatch_overhead_queued_us": round(queued_us - direct_us, 1),
        "direct_call_us": round(direct_us, 1),
        "manager_infer_us": round(inline_us, 1),
        "manager_submit_us": round(queued_us, 1),
    }


def throughput(manager: EngineManager, model: str, x: np.ndarray, seconds: float,
               in_flight: int = 4) -> tuple[float, float]:
    """(requests/s, CPU cores this process used) with `in_flight` requests kept outstanding."""
    slots = threading.Semaphore(in_flight)
    done = 0
    lock = threading.Lock()

    def finished(future) -> None:
        nonlocal done
        future.result()
        with lock:
            done += 1
        slots.release()

    for _ in range(in_flight):  # warm-up
        manager.infer(model, {"x": x})
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        slots.acquire()
        manager.submit(model, {"x": x}).add_done_callback(finished)
    for _ in range(in_flight):  # drain
        slots.acquire()
    elapsed = time.perf_counter() - start
    return done / elapsed, (time.process_time() - cpu_start) / elapsed


def scaling(path: Path, seconds: float, repeats: int, workdir: Path) -> dict:
    """Alternate short one-engine and two-engine runs (order swapped each pair) so that load from other
    processes hits both alike; scaling is the median of the per-pair ratios."""
    x = np.random.default_rng(1).standard_normal((256, 512)).astype(np.float32)
    one = ModelSpec("one", path, ("dla0",), precision="fp16", queue_size=8)
    two = ModelSpec("two", path, ("dla0", "dla1"), precision="fp16", policy="least_loaded", queue_size=8)
    config = EnginesConfig({"one": one, "two": two}, workdir, {})
    runs_1, runs_2, cpu_1, cpu_2 = [], [], [], []
    with EngineManager(config, available_cores=["dla0", "dla1", "cpu"],
                       engine_factory=one_thread_cpu_factory) as manager:
        assert [p["active"] for p in manager.placements()] == [["dla0"], ["dla0", "dla1"]]
        for index in range(repeats):
            order = ("one", "two") if index % 2 == 0 else ("two", "one")
            for model in order:
                rate, cores = throughput(manager, model, x, seconds)
                (runs_1 if model == "one" else runs_2).append(rate)
                (cpu_1 if model == "one" else cpu_2).append(cores)
        engine_ms = manager.statistics()["engines"]["one@dla0"]["latency_p50_ms"]
    ratios = [b / a for a, b in zip(runs_1, runs_2, strict=True)]
    return {
        "throughput_1": round(float(np.median(runs_1)), 1),
        "throughput_2": round(float(np.median(runs_2)), 1),
        "scaling_2": round(float(np.median(ratios)), 3),
        "scaling_2_runs": [round(v, 3) for v in ratios],
        "throughput_1_runs": [round(v, 1) for v in runs_1],
        "throughput_2_runs": [round(v, 1) for v in runs_2],
        "cpu_cores_used_1": round(float(np.median(cpu_1)), 2),
        "cpu_cores_used_2": round(float(np.median(cpu_2)), 2),
        "requests_per_cpu_second_1": round(float(np.median(runs_1) / np.median(cpu_1)), 1),
        "requests_per_cpu_second_2": round(float(np.median(runs_2) / np.median(cpu_2)), 1),
        "compute_model_ms_one_thread": round(engine_ms, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per throughput run (default 1)")
    parser.add_argument("--repeats", type=int, default=8, help="runs per figure; the median is reported")
    parser.add_argument("--requests", type=int, default=20000, help="requests per overhead run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        load_before = os.getloadavg()
        result = {"benchmark": "runtime", "cpu_count": os.cpu_count(),
                  "load_average_before": [round(v, 2) for v in load_before]}
        result.update(dispatch_overhead(trivial_model(workdir / "trivial.onnx"), args.requests, args.repeats,
                                        workdir))
        result.update(scaling(compute_model(workdir / "compute.onnx"), args.seconds, args.repeats, workdir))
        result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
