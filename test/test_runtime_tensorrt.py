"""TensorRT backend against the strict TensorRT 10 double (test/tensorrt_double.py), plus real-TensorRT
tests that run only where `import tensorrt` works."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from dla_perception.runtime.config import EnginesConfig, ModelSpec
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.manager import EngineManager
from dla_perception.runtime.tensorrt_engine import (
    BuildOptions,
    PlanCache,
    TensorRTEngine,
    build_plan,
    format_report,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double

INPUT_SHAPE = (1, 3, 8, 8)


def conv_model(path: Path, with_softmax: bool = True, seed: int = 0) -> Path:
    """Conv -> Relu [-> Softmax (not DLA-able)] -> Conv: two DLA subgraphs around a GPU layer."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1")]
    if with_softmax:
        nodes.append(helper.make_node("Softmax", ["r1"], ["s1"], name="softmax", axis=1))
    nodes.append(helper.make_node("Conv", ["s1" if with_softmax else "r1", "w2"], ["y"], name="conv2"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, INPUT_SHAPE)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])
    graph = helper.make_graph(nodes, "conv", [x], [y], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def reference(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.fixture
def model_path(tmp_path) -> Path:
    return conv_model(tmp_path / "conv.onnx")


def spec_for(path: Path, core: str = "dla1", precision: str = "fp16", **kwargs) -> ModelSpec:
    return ModelSpec("conv", path, (core,), precision=precision, **kwargs)


def engine_for(spec: ModelSpec, core: str, cache_dir: Path, trt, cuda=None) -> TensorRTEngine:
    return TensorRTEngine.from_spec(spec, core, cache_dir=cache_dir, gpu_name="Orin (double)", trt=trt,
                                    cuda=cuda or tensorrt_double.HostCuda())


def test_double_is_strict_about_removed_apis(trt, model_path, tmp_path):
    cuda = tensorrt_double.HostCuda()
    engine = engine_for(spec_for(model_path), "dla1", tmp_path, trt, cuda)
    raw_engine, context = engine._engine, engine._context
    removed = [(raw_engine, "num_bindings"), (raw_engine, "get_binding_shape"),
               (raw_engine, "max_batch_size"), (context, "execute_async_v2"), (context, "execute_async"),
               (trt, "build_engine")]
    for obj, name in removed:
        with pytest.raises(AttributeError, match="removed"):
            getattr(obj, name)
    config = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(AttributeError):
        config.max_workspace_size = 1 << 30
    with pytest.raises(AttributeError):
        _ = trt.Builder(trt.Logger()).max_batch_size


def test_dla_build_configuration(trt, model_path):
    plan, info = build_plan(trt, model_path, BuildOptions(core="dla1", precision="fp16"))
    (build,) = trt.double_state["builds"]
    assert trt.double_state["network_flags"] == [0]  # explicit batch is implicit in TensorRT 10
    assert build["default_device_type"] == "DLA" and build["DLA_core"] == 1
    assert build["flags"] == ["FP16", "GPU_FALLBACK"]
    assert build["pools"] == {"DLA_MANAGED_SRAM": 1 << 20}
    assert build["profiling_verbosity"] == "DETAILED"
    assert info == {"dla_layers": 3, "network_layers": 4}  # conv1, relu1, conv2 on DLA; softmax not
    assert plan.startswith(tensorrt_double.PLAN_MAGIC)


def test_pure_dla_uses_direct_io_and_fails_loudly_on_unsupported_layers(trt, model_path, tmp_path):
    build_plan(trt, conv_model(tmp_path / "dla_only.onnx", with_softmax=False),
               BuildOptions(core="dla0", precision="int8", gpu_fallback=False, dla_sram_bytes=1 << 19),
               calibration_batches=[{"x": np.ones(INPUT_SHAPE, np.float32)}], cuda=tensorrt_double.HostCuda())
    build = trt.double_state["builds"][-1]
    assert build["DLA_core"] == 0 and build["flags"] == ["DIRECT_IO", "FP16", "INT8"]
    assert build["pools"] == {"DLA_MANAGED_SRAM": 1 << 19}
    with pytest.raises(EngineError, match="GPU fallback is off"):
        build_plan(trt, model_path, BuildOptions(core="dla0", precision="fp16", gpu_fallback=False))


def test_gpu_build_has_no_dla_settings(trt, model_path):
    build_plan(trt, model_path, BuildOptions(core="gpu", precision="fp32"))
    (build,) = trt.double_state["builds"]
    assert build["default_device_type"] == "GPU" and build["flags"] == [] and build["pools"] == {}


def test_missing_dla_core_and_bad_onnx_are_engine_errors(trt, model_path, tmp_path):
    trt.double_state["num_dla_cores"] = 1
    with pytest.raises(EngineError, match="dla1 requested but TensorRT reports 1 DLA core"):
        build_plan(trt, model_path, BuildOptions(core="dla1"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file")
    with pytest.raises(EngineError, match="ONNX parser rejected"):
        build_plan(trt, garbage, BuildOptions(core="gpu"))


def test_int8_calibration_writes_then_reuses_the_cache(trt, model_path, tmp_path):
    cache = tmp_path / "calib" / "conv.cache"
    batches = [{"x": np.full(INPUT_SHAPE, value, np.float32)} for value in (1.0, -3.0, 2.0)]
    options = BuildOptions(core="dla0", precision="int8", calibration_cache=cache)
    build_plan(trt, model_path, options, calibration_batches=batches, cuda=tensorrt_double.HostCuda())
    assert trt.double_state["builds"][-1]["calibration"] == {"source": "batches", "batches": 3}
    text = cache.read_text()
    assert text.startswith("TRT-100300-EntropyCalibration2\n")
    assert f"x: {np.float32(3.0 / 127).view(np.uint32):08x}" in text  # the double saw the real batch data
    assert not list(cache.parent.glob("*.tmp"))
    build_plan(trt, model_path, options)  # no data needed now
    assert trt.double_state["builds"][-1]["calibration"] == {"source": "cache", "batches": 0}
    with pytest.raises(EngineError, match="INT8 needs a calibration cache"):
        build_plan(trt, model_path, BuildOptions(core="dla0", precision="int8",
                                                 calibration_cache=tmp_path / "absent.cache"))


def test_engine_runs_on_its_dla_core_and_stream(trt, model_path, tmp_path):
    cuda = tensorrt_double.HostCuda()
    engine = engine_for(spec_for(model_path), "dla1", tmp_path, trt, cuda)
    state = trt.double_state
    assert state["deserialized_on_dla_core"] == [1]  # runtime.DLA_core was set before deserialising
    io_names = {spec.name for spec in engine.input_specs() + engine.output_specs()}
    assert {name for name, _ in state["tensor_addresses"]} == io_names == {"x", "y"}
    assert dict(state["tensor_addresses"]) == {name: buffer.ptr for name, buffer in engine._buffers.items()}
    x = np.random.default_rng(1).standard_normal(INPUT_SHAPE).astype(np.float32)
    result = engine.run({"x": x})
    (stream,) = cuda.streams
    assert state["executions"] == [stream.ptr] and stream.ptr != 0
    assert {ptr for _, ptr in cuda.copies} == {stream.ptr} and stream.synchronized == 1
    np.testing.assert_allclose(result["y"], reference(model_path, x), rtol=1e-5, atol=1e-5)
    assert engine.describe()["placement"]["subgraphs"] == 2
    engine.close()
    assert cuda.freed == 3  # two buffers and the stream


def test_placement_report_counts_dla_gpu_and_subgraphs(trt, model_path, tmp_path):
    engine = engine_for(spec_for(model_path), "dla0", tmp_path, trt)
    report = engine.placement
    assert (report["DLA"], report["GPU"], report["subgraphs"], report["reformats"]) == (3, 1, 2, 2)
    assert report["gpu_layer_names"] == ["softmax"]
    assert report["dla_subgraph_names"] == ["{ForeignNode[conv1...relu1]}", "{ForeignNode[conv2...conv2]}"]
    assert report["verdict"].startswith("GPU FALLBACK")
    text = format_report(report)
    assert "GPU  softmax" in text and "DLA  {ForeignNode[conv1...relu1]}" in text
    gpu = engine_for(spec_for(model_path, core="gpu"), "gpu", tmp_path, trt)
    assert (gpu.placement["DLA"], gpu.placement["GPU"], gpu.placement["subgraphs"]) == (0, 4, 0)


def test_plan_cache_reuses_rebuilds_and_never_trusts_a_bad_file(trt, model_path, tmp_path, caplog):
    cache_dir = tmp_path / "plans"
    spec = spec_for(model_path, core="dla0")
    engine_for(spec, "dla0", cache_dir, trt)
    assert len(trt.double_state["builds"]) == 1
    (plan_path,) = cache_dir.glob("*.plan")
    (meta_path,) = cache_dir.glob("*.json")
    assert plan_path.name.startswith("conv-dla0-fp16-")
    meta = json.loads(meta_path.read_text())
    assert meta["key"]["tensorrt"] == "10.3.0" and meta["key"]["gpu"] == "Orin (double)"
    assert meta["key"]["core"] == "dla0" and meta["key"]["calibration_sha256"] is None
    assert not list(cache_dir.glob("*.tmp")) and not list(cache_dir.glob(".*"))

    engine_for(spec, "dla0", cache_dir, trt)  # cache hit
    assert len(trt.double_state["builds"]) == 1

    with caplog.at_level(logging.WARNING):
        plan_path.write_bytes(plan_path.read_bytes()[:-10])  # truncated
        engine_for(spec, "dla0", cache_dir, trt)
        assert len(trt.double_state["builds"]) == 2 and "corrupt" in caplog.text

        meta["key"]["tensorrt"] = "10.0.0"
        meta_path.write_text(json.dumps(meta))
        engine_for(spec, "dla0", cache_dir, trt)
        assert len(trt.double_state["builds"]) == 3 and "was built for" in caplog.text

        conv_model(model_path, seed=7)  # the model changed: a new key, the old plan is stale
        caplog.clear()
        engine_for(spec, "dla0", cache_dir, trt)
        assert len(trt.double_state["builds"]) == 4 and "stale" in caplog.text
    assert len(list(cache_dir.glob("conv-dla0-fp16-*.plan"))) == 2


def test_undeserializable_cached_plan_is_rebuilt(trt, model_path, tmp_path, caplog):
    cache = PlanCache(tmp_path)
    options = BuildOptions(core="gpu", precision="fp16")
    key = cache.key(model_path, options, "10.3.0", "Orin (double)")
    cache.store("conv", key, b"garbage that matches its own record", {})
    with caplog.at_level(logging.WARNING):
        engine = engine_for(spec_for(model_path, core="gpu"), "gpu", tmp_path, trt)
    assert "does not load" in caplog.text and len(trt.double_state["builds"]) == 1
    assert engine.run({"x": np.zeros(INPUT_SHAPE, np.float32)})["y"].shape == (1, 2, 8, 8)


def test_tensorrt_11_says_what_it_does_not_support(monkeypatch, model_path, tmp_path):
    trt11 = tensorrt_double.make_tensorrt("11.4.1", num_dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", trt11)
    with pytest.raises(EngineError, match="strongly typed networks only.*calibrators are gone"):
        engine_for(spec_for(model_path, precision="int8"), "dla0", tmp_path, trt11)
    with pytest.raises(EngineError, match="precision 'fp16' cannot be requested"):
        build_plan(trt11, model_path, BuildOptions(core="gpu", precision="fp16"))
    engine = engine_for(spec_for(model_path, core="gpu", precision="fp32"), "gpu", tmp_path, trt11)
    strongly_typed = 1 << int(trt11.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert trt11.double_state["network_flags"] == [strongly_typed]
    assert engine.run({"x": np.ones(INPUT_SHAPE, np.float32)})["y"].shape == (1, 2, 8, 8)


def test_manager_runs_tensorrt_engines_with_fallback_between_dla_cores(trt, model_path, tmp_path):
    """Two DLA cores requested, TensorRT reports one: dla1 falls back along the list to dla0."""
    trt.double_state["num_dla_cores"] = 1
    spec = ModelSpec("conv", model_path, ("dla0", "dla1"), precision="fp16", policy="round_robin")
    cuda = tensorrt_double.HostCuda()

    def factory(model_spec: ModelSpec, core: str) -> TensorRTEngine:
        return engine_for(model_spec, core, tmp_path / "plans", trt, cuda)

    config = EnginesConfig({"conv": spec}, tmp_path / "plans", {})
    cores = ["dla0", "dla1", "gpu", "cpu"]
    with EngineManager(config, available_cores=cores, engine_factory=factory) as manager:
        (placement,) = manager.placements()
        assert placement["active"] == ["dla0"]
        assert placement["fallbacks"][0]["used"] == "dla0"
        assert "TensorRT reports 1 DLA core" in placement["fallbacks"][0]["reason"]
        result = manager.infer("conv", {"x": np.ones(INPUT_SHAPE, np.float32)})
        assert result["y"].shape == (1, 2, 8, 8)
        description = manager.describe()["engines"]["conv@dla0"]
        assert description["backend"] == "tensorrt" and description["placement"]["subgraphs"] == 2
    assert cuda.freed == 3


def test_default_factory_uses_tensorrt_when_it_imports(trt, model_path, tmp_path):
    from dla_perception.runtime.engine import create_engine

    # With the double installed TensorRT "imports"; CUDA (polygraphy) is what is missing here, and the
    # factory must report that as an EngineError the manager can fall back from.
    with pytest.raises(EngineError, match="TensorRT"):
        create_engine(spec_for(model_path, core="dla0"), "dla0", cache_dir=tmp_path)


def test_real_tensorrt_builds_and_runs_on_the_gpu(model_path, tmp_path):
    from dla_perception.runtime.engine import tensorrt_importable

    if not tensorrt_importable():
        pytest.skip("real TensorRT is not installed here (import tensorrt fails)")
    import tensorrt as real_trt

    if int(real_trt.__version__.split(".")[0]) < 10:
        pytest.skip(f"TensorRT {real_trt.__version__} is older than 10")
    engine = TensorRTEngine.from_spec(spec_for(model_path, core="gpu"), "gpu", cache_dir=tmp_path)
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
    np.testing.assert_allclose(engine.run({"x": x})["y"], reference(model_path, x), rtol=1e-2, atol=1e-2)
    engine.close()


def test_placement_report_from_plain_layer_names():
    """LAYER_NAMES_ONLY inspectors give plain names; an all-DLA engine has no GPU layers or reformats."""
    from dla_perception.runtime.tensorrt_engine import placement_report

    report = placement_report(["{ForeignNode[conv1...conv9]}"], dla_layers=9)
    assert (report["DLA"], report["GPU"], report["subgraphs"], report["reformats"]) == (9, 0, 1, 0)
    assert report["verdict"] == "DLA: 9 layer(s) on DLA in 1 subgraph(s), no GPU fallback"
    gpu_only = placement_report(["conv1", "relu1"])
    assert gpu_only["DLA"] == 0 and gpu_only["verdict"].startswith("GPU: 2 layer(s)")
