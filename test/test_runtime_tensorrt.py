"""TensorRT backend against the strict TensorRT 10.3 double (test/tensorrt_double.py): every build path
(fp16, implicit INT8 with a calibrator, explicit Q/DQ, Q/DQ translated for DLA, strongly typed 11.4.1),
flags, errors, the engine, and the manager on top. Real-TensorRT tests run only where `import tensorrt`
works."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dla_perception.runtime.config import EnginesConfig, ModelSpec
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.manager import EngineManager
from dla_perception.runtime.tensorrt_build import BuildOptions, build_plan
from dla_perception.runtime.tensorrt_engine import TensorRTEngine, inspect_plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double
from trt_models import INPUT_SHAPE, conv_model, external_data_model, qdq_model, reference


@pytest.fixture
def model_path(tmp_path) -> Path:
    return conv_model(tmp_path / "conv.onnx")


@pytest.fixture
def dla_only(tmp_path) -> Path:
    return conv_model(tmp_path / "dla_only.onnx", with_softmax=False)


@pytest.fixture
def qdq_path(tmp_path, dla_only) -> Path:
    return qdq_model(tmp_path / "conv_qdq.onnx", dla_only)


def spec_for(path: Path, core: str = "dla1", precision: str = "fp16", **kwargs) -> ModelSpec:
    return ModelSpec("conv", path, (core,), precision=precision, **kwargs)


def engine_for(spec: ModelSpec, core: str, cache_dir: Path, trt, cuda=None) -> TensorRTEngine:
    return TensorRTEngine.from_spec(
        spec,
        core,
        cache_dir=cache_dir,
        gpu_name="Orin (double)",
        trt=trt,
        cuda=cuda or tensorrt_double.HostCuda(),
    )


def test_fp16_dla_build_configuration(trt, model_path):
    plan, info = build_plan(trt, model_path, BuildOptions(core="dla1", precision="fp16"))
    (build,) = trt.double_state["builds"]
    assert trt.double_state["network_flags"] == [0]  # explicit batch is implicit in TensorRT 10
    assert trt.double_state["parsed"] == [("file", str(model_path))]  # parse_from_file: external weights work
    assert build["default_device_type"] == "DLA" and build["DLA_core"] == 1
    assert build["flags"] == ["FP16", "GPU_FALLBACK"]  # no DIRECT_IO without native I/O
    assert build["pools"] == {"DLA_MANAGED_SRAM": 1 << 20} and build["profiling_verbosity"] == "DETAILED"
    assert info["mode"] == "fp16" and info["predicted_dla_layers"] == 3 and info["network_layers"] == 4
    assert info["builder_placement"] == {
        "DLA": ["{ForeignNode[conv1...relu1]}", "{ForeignNode[conv2...conv2]}"],
        "GPU": ["MYELIN: {ForeignNode[softmax...softmax]}"],
    }
    assert plan.startswith(tensorrt_double.PLAN_MAGIC)


def test_no_gpu_fallback_clears_only_gpu_fallback_and_direct_io_follows_native_io(trt, model_path, dla_only):
    build_plan(trt, dla_only, BuildOptions(core="dla0", gpu_fallback=False))
    assert trt.double_state["builds"][-1]["flags"] == ["FP16"]
    build_plan(trt, dla_only, BuildOptions(core="dla0", dla_native_io=True))
    build = trt.double_state["builds"][-1]
    assert build["flags"] == ["DIRECT_IO", "FP16", "GPU_FALLBACK"]
    assert build["input_formats"] == {"x": ("HALF", 1 << int(trt.TensorFormat.DLA_LINEAR))}
    with pytest.raises(EngineError, match="GPU fallback is off.*softmax"):
        build_plan(trt, model_path, BuildOptions(core="dla0", gpu_fallback=False))


def test_gpu_build_has_no_dla_settings(trt, model_path):
    _, info = build_plan(trt, model_path, BuildOptions(core="gpu", precision="fp32"))
    (build,) = trt.double_state["builds"]
    assert build["default_device_type"] == "GPU" and build["flags"] == [] and build["pools"] == {}
    assert info["mode"] == "fp32" and info["builder_placement"] is None


def test_missing_dla_core_and_bad_onnx_are_engine_errors(trt, model_path, tmp_path):
    trt.double_state["num_dla_cores"] = 1
    with pytest.raises(EngineError, match="dla1 requested but TensorRT reports 1 DLA core"):
        build_plan(trt, model_path, BuildOptions(core="dla1"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file")
    with pytest.raises(Exception):  # noqa: B017 - onnx's own error type for an unreadable file
        build_plan(trt, garbage, BuildOptions(core="gpu"))


def test_external_weights_build(trt, tmp_path):
    path = external_data_model(tmp_path / "ext")
    plan, _ = build_plan(trt, path, BuildOptions(core="dla0"))
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    assert engine is not None


def test_implicit_int8_calibration_writes_then_reuses_the_cache(trt, model_path, tmp_path, caplog):
    cache = tmp_path / "calib" / "conv.cache"
    batches = [{"x": np.full(INPUT_SHAPE, value, np.float32)} for value in (1.0, -3.0, 2.0)]
    options = BuildOptions(core="dla0", precision="int8", calibration_cache=cache)
    _, info = build_plan(
        trt, model_path, options, calibration_batches=batches, cuda=tensorrt_double.HostCuda()
    )
    assert info["mode"] == "implicit-int8" and "deprecated since TensorRT 10.1" in caplog.text
    assert trt.double_state["builds"][-1]["calibration"] == {"source": "batches", "batches": 3}
    assert trt.double_state["builds"][-1]["flags"] == ["FP16", "GPU_FALLBACK", "INT8"]
    text = cache.read_text()
    assert text.startswith("TRT-100300-EntropyCalibration2\n")
    assert f"x: {np.float32(3.0 / 127).view(np.uint32):08x}" in text  # the double saw the real batch data
    assert not list(cache.parent.glob("*.tmp"))
    build_plan(trt, model_path, options)  # no data needed now
    assert trt.double_state["builds"][-1]["calibration"]["source"] == "cache"
    with pytest.raises(EngineError, match="INT8 needs a calibration cache"):
        build_plan(
            trt,
            model_path,
            BuildOptions(core="dla0", precision="int8", calibration_cache=tmp_path / "absent.cache"),
        )


@pytest.mark.parametrize(
    "batch, message",
    [
        ({"image": np.zeros(INPUT_SHAPE, np.float32)}, "has inputs \\['image'\\], the network has \\['x'\\]"),
        ({"x": np.zeros((1, 3, 4, 4), np.float32)}, "'x' has shape \\(1, 3, 4, 4\\), the network input is"),
        ({"x": np.zeros(INPUT_SHAPE, np.float64)}, "'x' is float64, the network input is float32"),
        ({"x": np.full(INPUT_SHAPE, np.nan, np.float32)}, "NaN"),
    ],
)
def test_calibration_batches_are_validated_before_the_build(trt, model_path, tmp_path, batch, message):
    options = BuildOptions(core="dla0", precision="int8", calibration_cache=tmp_path / "c.cache")
    with pytest.raises(EngineError, match=message):
        build_plan(trt, model_path, options, calibration_batches=[batch], cuda=tensorrt_double.HostCuda())
    assert trt.double_state["builds"] == []  # refused before TensorRT was asked to build


def test_calibrator_exceptions_resurface_with_the_original_message(trt, model_path, tmp_path, monkeypatch):
    cuda = tensorrt_double.HostCuda()

    def broken_copy(self, host, stream=None):
        raise RuntimeError("cudaMemcpy failed: out of memory")

    monkeypatch.setattr(cuda.DeviceArray, "copy_from", broken_copy)
    options = BuildOptions(core="dla0", precision="int8", calibration_cache=tmp_path / "c.cache")
    batches = [{"x": np.ones(INPUT_SHAPE, np.float32)}]
    with pytest.raises(EngineError, match="get_batch: RuntimeError: cudaMemcpy failed: out of memory"):
        build_plan(trt, model_path, options, calibration_batches=batches, cuda=cuda)
    # A cache that cannot be written: the binding swallows it, the build does not.
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    options = BuildOptions(core="dla0", precision="int8", calibration_cache=blocked / "c.cache")
    with pytest.raises(EngineError, match="write_calibration_cache: FileExistsError.*File exists"):
        build_plan(trt, model_path, options, calibration_batches=batches, cuda=tensorrt_double.HostCuda())
    assert trt.double_state["stderr"] == []  # kept by our calibrator, never handed to the swallowing binding


def test_explicit_qdq_on_the_gpu_needs_no_calibrator(trt, qdq_path):
    plan, info = build_plan(trt, qdq_path, BuildOptions(core="gpu", precision="int8"))
    build = trt.double_state["builds"][-1]
    assert info["mode"] == "explicit-int8" and build["flags"] == ["FP16", "INT8"]
    assert build["calibration"] == {"source": "explicit", "batches": 0}
    report = inspect_plan(trt, plan, "gpu", info)
    assert report["subgraphs"] == 0 and any("QuantizeLinear" in name for name in report["gpu_layer_names"])


def test_qdq_on_dla_is_translated_to_its_own_scales(trt, qdq_path):
    import onnx

    plan, info = build_plan(trt, qdq_path, BuildOptions(core="dla0", precision="int8"))
    build = trt.double_state["builds"][-1]
    assert info["mode"] == "translated-int8" and info["qdq_translation"]["weights"] == 2
    assert "QuantizeLinear" not in " ".join(build["layers"])  # TensorRT saw the network without Q/DQ
    cache = build["calibration"]["cache"]
    scales = {n.input[0]: n for n in onnx.load(str(qdq_path)).graph.node if n.op_type == "QuantizeLinear"}
    init = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(qdq_path)).graph.initializer}
    x_scale = np.float32(init[scales["x"].input[1]])
    assert f"x: {x_scale.view(np.uint32):08x}" in cache  # the model's own scale, no calibration pass
    report = inspect_plan(trt, plan, "dla0", info)
    assert report["verdict"].startswith("DLA: 1 DLA subgraph(s), no GPU fallback")
    build_plan(trt, qdq_path, BuildOptions(core="dla0", precision="int8", qdq="explicit"))
    assert "x_QuantizeLinear" in trt.double_state["builds"][-1]["layers"]  # explicit: as the user asked


def test_qdq_model_with_another_precision_is_refused(trt, qdq_path):
    with pytest.raises(EngineError, match="explicitly quantized.*use precision int8"):
        build_plan(trt, qdq_path, BuildOptions(core="dla0", precision="fp16"))


def test_tensorrt_11_versions_say_what_they_support(monkeypatch, model_path, qdq_path, tmp_path):
    for version, message in (("11.2.0", "has no DLA"), ("11.4.0", "Windows on ARM")):
        trt11 = tensorrt_double.make_tensorrt(version)
        with pytest.raises(EngineError, match=message):
            build_plan(trt11, qdq_path, BuildOptions(core="dla0", precision="int8"))
    trt11 = tensorrt_double.make_tensorrt("11.4.1", num_dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", trt11)
    with pytest.raises(EngineError, match="strongly typed networks only.*quantize it"):
        engine_for(spec_for(model_path, precision="int8"), "dla0", tmp_path, trt11)
    with pytest.raises(EngineError, match="precision 'fp16' cannot be requested.*float16"):
        build_plan(trt11, model_path, BuildOptions(core="gpu", precision="fp16"))
    plan, info = build_plan(trt11, qdq_path, BuildOptions(core="dla0", precision="int8"))
    strongly_typed = 1 << int(trt11.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert info["mode"] == "strongly-typed" and trt11.double_state["network_flags"][-1] == strongly_typed
    assert trt11.double_state["builds"][-1]["flags"] == ["GPU_FALLBACK"]  # no precision flags exist
    engine = engine_for(spec_for(model_path, core="gpu", precision="fp32"), "gpu", tmp_path, trt11)
    assert engine.run({"x": np.ones(INPUT_SHAPE, np.float32)})["y"].shape == (1, 2, 8, 8)


def test_engine_runs_on_its_dla_core_and_stream(trt, model_path, tmp_path):
    cuda = tensorrt_double.HostCuda()
    engine = engine_for(spec_for(model_path), "dla1", tmp_path, trt, cuda)
    state = trt.double_state
    assert state["deserialized_on_dla_core"] == [1]  # runtime.DLA_core was set before deserialising
    assert dict(state["tensor_addresses"]) == {name: buffer.ptr for name, buffer in engine._buffers.items()}
    x = np.random.default_rng(1).standard_normal(INPUT_SHAPE).astype(np.float32)
    result = engine.run({"x": x})
    (stream,) = cuda.streams
    assert state["executions"] == [stream.ptr] and stream.ptr != 0
    assert {ptr for _, ptr in cuda.copies} == {stream.ptr} and stream.synchronized == 1 and not cuda.errors
    np.testing.assert_allclose(result["y"], reference(model_path, x), rtol=1e-5, atol=1e-5)
    assert engine.describe()["placement"]["subgraphs"] == 2 and engine.describe()["build_mode"] == "fp16"
    assert len({id(logger) for logger in state["loggers"]}) == 1  # one shared logger for builder and runtime
    engine.close()
    assert cuda.freed == 3  # two buffers and the stream


def test_pure_dla_engine_with_gpu_layers_fails_loudly(trt, model_path, tmp_path):
    """gpu_fallback: false, yet the engine has a layer on the GPU (a Myelin subgraph): EngineError, not a
    quiet GPU fallback."""
    plan, info = build_plan(trt, model_path, BuildOptions(core="dla0"))
    common = {"model": "conv", "core": "dla0", "precision": "fp16", "build_info": info, "trt": trt}
    with pytest.raises(EngineError, match="without GPU fallback, yet TensorRT runs 1 layer.*softmax"):
        TensorRTEngine(plan, cuda=tensorrt_double.HostCuda(), gpu_fallback=False, **common)
    engine = TensorRTEngine(plan, cuda=tensorrt_double.HostCuda(), **common)
    assert engine.placement["gpu_fallback"] and engine.placement["verdict"].startswith("GPU FALLBACK")


def test_manager_runs_tensorrt_engines_with_fallback_between_dla_cores(trt, model_path, tmp_path):
    """Two DLA cores requested, TensorRT reports one: dla1 falls back along the list to dla0."""
    trt.double_state["num_dla_cores"] = 1
    spec = ModelSpec("conv", model_path, ("dla0", "dla1"), precision="fp16", policy="round_robin")
    cuda = tensorrt_double.HostCuda()

    def factory(model_spec: ModelSpec, core: str) -> TensorRTEngine:
        return engine_for(model_spec, core, tmp_path / "plans", trt, cuda)

    config = EnginesConfig({"conv": spec}, tmp_path / "plans", {})
    with EngineManager(
        config, available_cores=["dla0", "dla1", "gpu", "cpu"], engine_factory=factory
    ) as manager:
        (placement,) = manager.placements()
        assert placement["active"] == ["dla0"]
        assert "TensorRT reports 1 DLA core" in placement["fallbacks"][0]["reason"]
        assert manager.infer("conv", {"x": np.ones(INPUT_SHAPE, np.float32)})["y"].shape == (1, 2, 8, 8)
        description = manager.describe()["engines"]["conv@dla0"]
        assert description["backend"] == "tensorrt" and description["placement"]["subgraphs"] == 2
    assert cuda.freed == 3


def test_manager_runs_a_qdq_model_on_dla_without_a_calibration_cache(trt, qdq_path, tmp_path):
    spec = ModelSpec("head", qdq_path, ("dla0",), precision="int8")

    def factory(model_spec: ModelSpec, core: str) -> TensorRTEngine:
        return engine_for(model_spec, core, tmp_path / "plans", trt)

    config = EnginesConfig({"head": spec}, tmp_path / "plans", {})
    with EngineManager(config, available_cores=["dla0", "cpu"], engine_factory=factory) as manager:
        x = np.random.default_rng(3).standard_normal(INPUT_SHAPE).astype(np.float32)
        got = manager.infer("head", {"x": x})["y"]
        assert manager.describe()["engines"]["head@dla0"]["build_mode"] == "translated-int8"
    # The double runs the translated float network; the Q/DQ model itself (onnxruntime) is close to it.
    np.testing.assert_allclose(got, reference(qdq_path, x), atol=0.1 * float(np.abs(got).max()))


def test_default_factory_reports_tensorrt_and_onnxruntime_reasons(trt, model_path, tmp_path):
    from dla_perception.runtime.backends import create_engine

    # With the double installed TensorRT "imports"; CUDA (libcudart, via polygraphy) is what is missing.
    with pytest.raises(EngineError, match="TensorRT: .*; onnxruntime: no TensorRT execution provider"):
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
