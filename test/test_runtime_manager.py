"""EngineManager with real onnxruntime engines on small graphs built here with onnx.helper.

Where a test needs two or more cores on this CPU-only machine, an engine factory builds real onnxruntime
CPU sessions and the manager places them on the core labels it is given (dla0, dla1, gpu): the manager's
dispatch, failover and statistics do not depend on which silicon runs the session.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dla_perception.runtime.config import EnginesConfig, ModelSpec
from dla_perception.runtime.errors import (
    EngineError,
    EngineManagerClosed,
    InputValidationError,
    RequestDropped,
)
from dla_perception.runtime.manager import EngineManager, fallback_chain
from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine

OPSET = [helper.make_opsetid("", 17)]
SLOW_SHAPE = (256, 512)
# Tests of queueing, not of deadlines (test_runtime_faults.py): a deadline no loaded machine reaches.
NO_DEADLINE_MS = 600_000.0
VERY_SLOW_SHAPE = (1024, 512)


def save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def relu_model(path: Path, shape=(1, 4)) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    return save(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]), path)


def failing_relu_model(path: Path) -> Path:
    """Same inputs as relu_model, but its Reshape to [3, 5] genuinely fails inside onnxruntime at run time."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    bad_shape = numpy_helper.from_array(np.array([3, 5], np.int64), "bad_shape")
    nodes = [helper.make_node("Reshape", ["x", "bad_shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    return save(helper.make_graph(nodes, "failing", [x], [y], [bad_shape]), path)


def matmul_model(path: Path, rows: int = 64, width: int = 256, layers: int = 6, seed: int = 0) -> Path:
    """x[rows, width] -> `layers` x (MatMul + Tanh): compute-bound, milliseconds on one thread."""
    rng = np.random.default_rng(seed)
    weights, nodes, current = [], [], "x"
    for index in range(layers):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"w{index}"))
        out = "y" if index == layers - 1 else f"h{index}"
        nodes += [helper.make_node("MatMul", [current, f"w{index}"], [f"m{index}"]),
                  helper.make_node("Tanh", [f"m{index}"], [out])]
        current = out
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, width])
    return save(helper.make_graph(nodes, "matmul", [x], [y], weights), path)


def matmul_reference(path: Path, x: np.ndarray) -> np.ndarray:
    weights = {init.name: numpy_helper.to_array(init) for init in onnx.load(path).graph.initializer}
    for index in range(len(weights)):
        x = np.tanh(x @ weights[f"w{index}"])
    return x


def cpu_backed_factory(overrides: dict[str, Path] | None = None):
    """Real onnxruntime CPU sessions for any core label; `overrides` maps a core to a different ONNX file."""
    overrides = overrides or {}

    def factory(spec: ModelSpec, core: str) -> OnnxRuntimeEngine:
        return OnnxRuntimeEngine(overrides.get(core, spec.onnx), model=spec.name, core="cpu",
                                 intra_op_threads=1)

    return factory


def config_of(*specs: ModelSpec, tmp_path: Path) -> EnginesConfig:
    return EnginesConfig({spec.name: spec for spec in specs}, tmp_path / "cache", {"cpu": 100.0})


@pytest.fixture
def relu_path(tmp_path: Path) -> Path:
    return relu_model(tmp_path / "relu.onnx")


@pytest.fixture(scope="module")
def very_slow_path(tmp_path_factory) -> Path:
    """About 60 ms per run: slow enough that requests are still queued a moment after submission, even
    when other processes hold the CPU."""
    rows, width = VERY_SLOW_SHAPE
    return matmul_model(tmp_path_factory.mktemp("very_slow") / "very_slow.onnx", rows=rows, width=width,
                        layers=8)


@pytest.fixture(scope="module")
def slow_path(tmp_path_factory) -> Path:
    """About 15 ms per run on one thread of a current x86 core."""
    rows, width = SLOW_SHAPE
    return matmul_model(tmp_path_factory.mktemp("slow") / "slow.onnx", rows=rows, width=width, layers=8)


def test_infer_runs_the_model_and_reports_specs(relu_path, tmp_path):
    spec = ModelSpec("relu", relu_path, ("cpu",))
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        assert manager.has_model("relu") and not manager.has_model("other")
        assert manager.model_names == ["relu"]
        (inp,), (out,) = manager.input_specs("relu"), manager.output_specs("relu")
        assert (inp.name, inp.shape, inp.dtype) == ("x", (1, 4), np.dtype(np.float32))
        assert (out.name, out.shape, out.dtype) == ("y", (1, 4), np.dtype(np.float32))
        result = manager.infer("relu", {"x": np.array([[-1, 2, -3, 4]], np.float32)})
        np.testing.assert_array_equal(result["y"], [[0, 2, 0, 4]])
        future = manager.submit("relu", {"x": np.array([[5, -5, 5, -5]], np.float32)})
        np.testing.assert_array_equal(future.result(5)["y"], [[5, 0, 5, 0]])


def test_fallback_chain_order():
    assert fallback_chain("dla1", ["dla0", "dla1"]) == ["dla1", "dla0", "gpu", "cpu"]
    assert fallback_chain("dla0", ["dla0", "dla1"]) == ["dla0", "dla1", "gpu", "cpu"]
    assert fallback_chain("gpu", ["gpu", "cpu"]) == ["gpu", "cpu"]
    assert fallback_chain("cpu", ["cpu", "dla0"]) == ["cpu", "dla0", "gpu"]


def test_missing_dla_cores_share_one_cpu_worker_and_say_why(relu_path, tmp_path, caplog):
    """round_robin over [dla0, dla1] where no DLA exists: one cpu engine, two reported fallbacks."""
    spec = ModelSpec("head", relu_path, ("dla0", "dla1"), precision="fp16", policy="round_robin")
    with caplog.at_level("WARNING", logger="dla_perception.runtime.manager"):
        manager = EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["gpu", "cpu"],
                                engine_factory=_cpu_only_factory)
    with manager:
        (placement,) = manager.placements()
        assert placement["requested"] == ["dla0", "dla1"]
        assert placement["active"] == ["cpu"]
        used = [(fallback["requested"], fallback["used"]) for fallback in placement["fallbacks"]]
        assert used == [("dla0", "cpu"), ("dla1", "cpu")]
        reason = placement["fallbacks"][0]["reason"]
        assert "dla0 not present" in reason and "gpu failed" in reason
        assert list(manager.statistics()["engines"]) == ["head@cpu"]
        for _ in range(4):
            manager.infer("head", {"x": np.ones((1, 4), np.float32)})
        assert manager.statistics()["cores"]["cpu"]["inferences"] == 4
    assert "core dla0 -> cpu" in caplog.text and "core dla1 -> cpu" in caplog.text


def _cpu_only_factory(spec: ModelSpec, core: str) -> OnnxRuntimeEngine:
    """Like a machine whose GPU backend is broken: gpu really fails (no CUDA provider), cpu works."""
    return OnnxRuntimeEngine(spec.onnx, model=spec.name, core=core, intra_op_threads=1)


def test_default_factory_falls_back_from_dla_without_tensorrt(relu_path, tmp_path):
    pytest.importorskip("onnxruntime")
    from dla_perception.runtime.engine import tensorrt_importable

    if tensorrt_importable():
        pytest.skip("TensorRT is installed here: dla0 would not fall back")
    spec = ModelSpec("relu", relu_path, ("dla0",), precision="fp16")
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["dla0", "cpu"]) as manager:
        (placement,) = manager.placements()
        assert placement["active"] == ["cpu"]
        assert "tensorrt" in placement["fallbacks"][0]["reason"].lower()


def test_requested_core_falls_back_along_the_list_first(relu_path, tmp_path):
    spec = ModelSpec("m", relu_path, ("dla1", "dla0"), precision="fp16", policy="round_robin")
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["dla0", "gpu", "cpu"],
                       engine_factory=cpu_backed_factory()) as manager:
        (placement,) = manager.placements()
        assert placement["active"] == ["dla0"]
        assert placement["fallbacks"] == [
            {"requested": "dla1", "used": "dla0", "reason": "dla1 not present on this machine"}]


def test_no_core_at_all_is_an_engine_error(tmp_path):
    spec = ModelSpec("broken", tmp_path / "missing.onnx", ("cpu",))
    with pytest.raises(EngineError, match="broken.*cpu"):
        EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"])


def test_policies_distribute_as_documented(relu_path, tmp_path):
    specs = [ModelSpec(policy, relu_path, ("dla0", "dla1"), precision="fp16", policy=policy)
             for policy in ("pinned", "round_robin")]
    with EngineManager(config_of(*specs, tmp_path=tmp_path), available_cores=["dla0", "dla1", "cpu"],
                       engine_factory=cpu_backed_factory()) as manager:
        for spec in specs:
            for _ in range(6):
                manager.infer(spec.name, {"x": np.ones((1, 4), np.float32)})
        engines = manager.statistics()["engines"]
        assert (engines["pinned@dla0"]["inferences"], engines["pinned@dla1"]["inferences"]) == (6, 0)
        assert engines["round_robin@dla0"]["inferences"] == engines["round_robin@dla1"]["inferences"] == 3
        dla0 = manager.statistics()["cores"]["dla0"]
        assert dla0["inferences"] == 9 and sorted(dla0["engines"]) == ["pinned", "round_robin"]


def test_least_loaded_sends_the_next_request_to_the_idle_core(slow_path, tmp_path):
    spec = ModelSpec("slow", slow_path, ("dla0", "dla1"), precision="fp16", policy="least_loaded",
                     deadline_ms=NO_DEADLINE_MS)
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["dla0", "dla1", "cpu"],
                       engine_factory=cpu_backed_factory()) as manager:
        x = np.ones(SLOW_SHAPE, np.float32)
        futures = [manager.submit("slow", {"x": x}) for _ in range(2)]
        wait(futures, timeout=30)
        engines = manager.statistics()["engines"]
        assert engines["slow@dla0"]["inferences"] == 1 and engines["slow@dla1"]["inferences"] == 1


def test_concurrent_callers_get_their_own_results(tmp_path):
    path = matmul_model(tmp_path / "mm.onnx", rows=8, width=64, layers=3)
    spec = ModelSpec("mm", path, ("dla0", "dla1"), precision="fp16", policy="round_robin", queue_size=64,
                     deadline_ms=NO_DEADLINE_MS)
    errors: list[BaseException] = []
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["dla0", "dla1", "cpu"],
                       engine_factory=cpu_backed_factory()) as manager:

        def caller(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                for _ in range(25):
                    x = rng.standard_normal((8, 64)).astype(np.float32)
                    if seed % 2:
                        result = manager.infer("mm", {"x": x})
                    else:
                        result = manager.submit("mm", {"x": x}).result(30)
                    np.testing.assert_allclose(result["y"], matmul_reference(path, x), rtol=1e-4, atol=1e-5)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors[0]
        stats = manager.statistics()
        assert sum(core["inferences"] for core in stats["cores"].values()) == 100
        assert stats["engines"]["mm@dla0"]["inferences"] > 0 and stats["engines"]["mm@dla1"]["inferences"] > 0
        assert all(core["errors"] == 0 and core["drops"] == 0 for core in stats["cores"].values())


def test_failover_retries_on_another_core_and_benches_the_failing_one(relu_path, tmp_path, caplog):
    broken = failing_relu_model(tmp_path / "broken.onnx")
    spec = ModelSpec("relu", relu_path, ("gpu", "cpu"), precision="fp16", policy="pinned")
    manager = EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["gpu", "cpu"],
                            engine_factory=cpu_backed_factory({"gpu": broken}),
                            error_threshold=2, initial_backoff_s=0.5)
    x = np.array([[-1, 1, -1, 1]], np.float32)
    with manager, caplog.at_level("WARNING", logger="dla_perception.runtime.manager"):
        for _ in range(2):  # each fails on gpu, then succeeds on cpu
            np.testing.assert_array_equal(manager.infer("relu", {"x": x})["y"], [[0, 1, 0, 1]])
        stats = manager.statistics()["engines"]
        assert stats["relu@gpu"]["errors"] == 2 and stats["relu@cpu"]["inferences"] == 2
        assert stats["relu@gpu"]["in_rotation"] is False
        for _ in range(3):  # gpu is out of rotation: straight to cpu
            manager.infer("relu", {"x": x})
        assert manager.statistics()["engines"]["relu@gpu"]["errors"] == 2
        time.sleep(0.55)  # back-off over: gpu is tried again, fails once more and leaves for longer
        manager.infer("relu", {"x": x})
        stats = manager.statistics()["engines"]
        assert stats["relu@gpu"]["errors"] == 3 and stats["relu@cpu"]["inferences"] == 6
        assert stats["relu@gpu"]["in_rotation"] is False
        worker = next(w for w in manager._models["relu"].workers if w.core == "gpu")
        assert worker.backoff_s == pytest.approx(2.0)  # 0.5 -> 1.0 used now -> 2.0 next
    assert "retrying on cpu" in caplog.text and "out of rotation" in caplog.text


def test_a_request_failing_everywhere_resolves_with_an_engine_error(tmp_path):
    broken = failing_relu_model(tmp_path / "broken.onnx")
    spec = ModelSpec("bad", broken, ("dla0", "dla1", "cpu"), precision="fp16", policy="round_robin")
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["dla0", "dla1", "cpu"],
                       engine_factory=cpu_backed_factory()) as manager:
        future = manager.submit("bad", {"x": np.ones((1, 4), np.float32)})
        with pytest.raises(EngineError, match="cannot be reshaped"):
            future.result(10)
        with pytest.raises(EngineError):
            manager.infer("bad", {"x": np.ones((1, 4), np.float32)})
        # Each request tried exactly twice: once, then once more on another core.
        assert sum(core["errors"] for core in manager.statistics()["cores"].values()) == 4


def test_full_queues_drop_the_oldest_and_every_future_resolves(very_slow_path, tmp_path):
    spec = ModelSpec("slow", very_slow_path, ("cpu",), queue_size=2, intra_op_threads=1,
                     deadline_ms=NO_DEADLINE_MS)
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        x = np.ones(VERY_SLOW_SHAPE, np.float32)
        futures = [manager.submit("slow", {"x": x}) for _ in range(8)]
        done, pending = wait(futures, timeout=60)
        assert not pending
        dropped = [f for f in futures if isinstance(f.exception(), RequestDropped)]
        succeeded = [f for f in futures if f.exception() is None]
        assert len(dropped) + len(succeeded) == 8
        assert len(dropped) >= 3  # at most one running + two waiting at any moment
        assert futures[-1] in succeeded and futures[-2] in succeeded  # latest wins
        stats = manager.statistics()["cores"]["cpu"]
        assert stats["drops"] == len(dropped) and stats["inferences"] == len(succeeded)


def test_close_fails_queued_requests_and_refuses_new_ones(very_slow_path, tmp_path):
    spec = ModelSpec("slow", very_slow_path, ("cpu",), queue_size=8, intra_op_threads=1,
                     deadline_ms=NO_DEADLINE_MS)
    manager = EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"])
    x = np.ones(VERY_SLOW_SHAPE, np.float32)
    futures = [manager.submit("slow", {"x": x}) for _ in range(5)]
    time.sleep(0.01)
    manager.close()
    assert all(future.done() for future in futures)
    outcomes = [type(future.exception()) for future in futures]
    assert EngineManagerClosed in outcomes
    assert set(outcomes) <= {type(None), EngineManagerClosed}
    assert outcomes[:outcomes.index(EngineManagerClosed)].count(type(None)) <= 1  # at most the running one
    with pytest.raises(EngineManagerClosed):
        manager.submit("slow", {"x": x})
    with pytest.raises(EngineManagerClosed):
        manager.infer("slow", {"x": x})
    with pytest.raises(EngineManagerClosed):
        manager.add_model(ModelSpec("late", very_slow_path, ("cpu",)))
    manager.close()  # idempotent
    assert not any(t.name.startswith("engine slow@") for t in threading.enumerate())


def test_infer_timeout(very_slow_path, tmp_path):
    spec = ModelSpec("slow", very_slow_path, ("cpu",), queue_size=4, intra_op_threads=1,
                     deadline_ms=NO_DEADLINE_MS)
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        x = np.ones(VERY_SLOW_SHAPE, np.float32)
        blockers = [manager.submit("slow", {"x": x}) for _ in range(3)]
        with pytest.raises(FutureTimeout):
            manager.infer("slow", {"x": x}, timeout=0.001)
        wait(blockers, timeout=30)


def test_bad_inputs_are_rejected_before_any_engine_runs(relu_path, tmp_path):
    spec = ModelSpec("relu", relu_path, ("cpu",))
    good = np.zeros((1, 4), np.float32)
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        cases = {
            "unknown model": ("nope", {"x": good}),
            "missing": ("relu", {}),
            "unexpected": ("relu", {"x": good, "z": good}),
            "dtype float64": ("relu", {"x": good.astype(np.float64)}),
            "shape": ("relu", {"x": np.zeros((1, 5), np.float32)}),
            "rank": ("relu", {"x": np.zeros((4,), np.float32)}),
            "list": ("relu", {"x": [[0.0, 0.0, 0.0, 0.0]]}),
            "not a dict": ("relu", [good]),
        }
        messages = {}
        for label, (model, inputs) in cases.items():
            with pytest.raises(InputValidationError) as info:
                manager.submit(model, inputs)
            messages[label] = str(info.value)
        assert "unknown model 'nope'" in messages["unknown model"]
        assert "missing ['x']" in messages["missing"] and "unexpected ['z']" in messages["unexpected"]
        assert "float64" in messages["dtype float64"] and "astype(np.float32)" in messages["dtype float64"]
        assert "(1, 5)" in messages["shape"] and "(1, 4)" in messages["shape"]
        assert "numpy array" in messages["list"]
        assert manager.statistics()["cores"]["cpu"]["inferences"] == 0


def test_non_contiguous_inputs_are_copied_and_dynamic_dims_accepted(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "neg", [x], [y])
    path = save(graph, tmp_path / "neg.onnx")
    spec = ModelSpec("neg", path, ("cpu",))
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        assert manager.input_specs("neg")[0].shape == (-1, 4)
        wide = np.arange(24, dtype=np.float32).reshape(3, 8)
        view = wide[:, ::2]
        assert not view.flags.c_contiguous
        np.testing.assert_array_equal(manager.infer("neg", {"x": view})["y"], -view)
        transposed = np.arange(8, dtype=np.float32).reshape(4, 2).T
        np.testing.assert_array_equal(manager.infer("neg", {"x": transposed})["y"], -transposed)
        with pytest.raises(InputValidationError, match=r"\('\?', 4\)"):
            manager.infer("neg", {"x": np.zeros((2, 3), np.float32)})


def test_statistics_agree_with_independently_timed_work(tmp_path):
    path = matmul_model(tmp_path / "mm.onnx", rows=256, width=512, layers=3)  # a few ms per run
    spec = ModelSpec("mm", path, ("cpu",), intra_op_threads=1)
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"], window_s=60) as manager:
        x = np.ones((256, 512), np.float32)
        outside = []
        began = time.monotonic()
        for _ in range(30):
            start = time.perf_counter()
            manager.infer("mm", {"x": x})
            outside.append(time.perf_counter() - start)
        elapsed = time.monotonic() - began
        stats = manager.statistics()["cores"]["cpu"]
    outside_ms = np.array(outside) * 1e3
    assert stats["inferences"] == 30 and stats["errors"] == 0 and stats["queue_depth"] == 0
    # The engine's own timing sits inside the caller's: never above it, and not far below.
    assert stats["latency_max_ms"] <= outside_ms.max()
    assert 0.5 * np.median(outside_ms) <= stats["latency_p50_ms"] <= np.median(outside_ms)
    keys = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms")
    assert [stats[key] for key in keys] == sorted(stats[key] for key in keys)
    # fps and busy fraction over the engine's lifetime (shorter than the window), which began before `began`.
    lifetime = elapsed + 5.0  # generous bound on start-up before the first request
    assert 30 / lifetime <= stats["fps"] <= 30 / elapsed * 1.01
    assert stats["busy_fraction"] <= outside_ms.sum() / 1e3 / elapsed * 1.01
    assert stats["busy_fraction"] >= 0.5 * np.median(outside_ms) * 30 / 1e3 / lifetime


def test_statistics_are_cheap_to_read(relu_path, tmp_path):
    spec = ModelSpec("relu", relu_path, ("cpu",))
    with EngineManager(config_of(spec, tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        for _ in range(2000):
            manager.infer("relu", {"x": np.ones((1, 4), np.float32)})
        start = time.perf_counter()
        stats = manager.statistics()
        assert time.perf_counter() - start < 0.1
        assert stats["cores"]["cpu"]["inferences"] == 2000


def test_add_model_at_run_time_and_describe(relu_path, slow_path, tmp_path):
    import json

    with EngineManager(config_of(tmp_path=tmp_path), available_cores=["cpu"]) as manager:
        assert manager.model_names == []
        manager.add_model(ModelSpec("relu", relu_path, ("gpu", "cpu")))
        with pytest.raises(ValueError, match="already registered"):
            manager.add_model(ModelSpec("relu", slow_path, ("cpu",)))
        assert manager.infer("relu", {"x": np.ones((1, 4), np.float32)})["y"].shape == (1, 4)
        description = json.loads(json.dumps(manager.describe()))
        assert description["models"]["relu"]["active"] == ["cpu"]
        assert description["models"]["relu"]["inputs"] == [{"name": "x", "shape": [1, 4], "dtype": "float32"}]
        engine = description["engines"]["relu@cpu"]
        assert engine["backend"] == "onnxruntime" and engine["precision"] == "fp32"
        assert engine["intra_op_threads"] >= 1


def test_onnxruntime_execution_provider_options_for_dla_and_gpu(tmp_path):
    """What the onnxruntime engine asks of the TensorRT execution provider on a DLA core (where installed)."""
    providers, wanted = OnnxRuntimeEngine._providers("dla0", "int8", tmp_path, tmp_path / "head.calib")
    assert wanted == "TensorrtExecutionProvider" and providers[-1] == "CPUExecutionProvider"
    name, options = providers[0]
    assert name == "TensorrtExecutionProvider"
    assert options["trt_dla_enable"] is True and options["trt_dla_core"] == 0
    assert options["trt_int8_enable"] is True and options["trt_fp16_enable"] is True
    assert options["trt_int8_calibration_table_name"] == str(tmp_path / "head.calib")
    assert options["trt_engine_cache_path"] == str(tmp_path / "onnxruntime-trt" / "dla0")
    with pytest.raises(EngineError, match="onnxruntime#26680"):  # its engines would run on core 0
        OnnxRuntimeEngine._providers("dla1", "int8", tmp_path, None)
    assert OnnxRuntimeEngine._providers("cpu", "fp32", None, None) == (["CPUExecutionProvider"],
                                                                       "CPUExecutionProvider")


def test_a_missing_execution_provider_is_an_engine_error_not_a_silent_cpu_run(relu_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(EngineError, match="did not enable"):
        OnnxRuntimeEngine(relu_path, core="gpu")
