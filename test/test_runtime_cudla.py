"""The cudla backend end to end through the two sanctioned doubles: the TensorRT double builds DLA standalone
loadables, the cuDLA double runs them (onnxruntime inside). Build, cache, load, run, errors, timeouts."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trt_models import INPUT_SHAPE, conv_model

from dla_perception.runtime.config import ModelSpec
from dla_perception.runtime.cudla_engine import CudlaEngine
from dla_perception.runtime.errors import EngineError, TaskTimeout

REPO = Path(__file__).resolve().parent.parent
HEAD = REPO / "models" / "proximity" / "head.onnx"
HEAD_INT8 = REPO / "models" / "proximity" / "head_int8.onnx"
DETECTOR = REPO / "models" / "detector" / "detector.onnx"


def _spec(path: Path, precision: str = "fp16", cores=("dla0", "dla1"), **kwargs) -> ModelSpec:
    return ModelSpec(path.stem, path, cores, precision=precision, backend="cudla", **kwargs)


def _engine(spec: ModelSpec, core: str, cache: Path) -> CudlaEngine:
    return CudlaEngine.from_spec(spec, core, cache_dir=cache, gpu_name="Orin (double)")


def _inputs(engine, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s.name: rng.random(s.shape).astype(s.dtype) for s in engine.input_specs()}


def _head_inputs_of_a_frame() -> dict[str, np.ndarray]:
    """The head's inputs as the pipeline makes them from a synthetic frame (features in their real range:
    uniform noise is far outside it, where INT8 scales fitted to real features say little)."""
    from dla_perception.dla.calibration_data import Frame, proximity_inputs
    from dla_perception.synthetic.camera import StereoCamera
    from dla_perception.synthetic.scene import generate_frame

    camera = StereoCamera()
    frame = generate_frame(1_000_005, camera)
    recorded = proximity_inputs(HEAD, "proximity_head", [Frame(
        frame.left, "rgb8", frame.right, camera.projection_left(), camera.projection_right())])
    return recorded[0]


def _reference(path: Path, inputs: dict) -> list[np.ndarray]:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)


@pytest.mark.parametrize("model", [HEAD, DETECTOR], ids=["proximity_head", "detector"])
def test_project_models_run_from_a_loadable_per_core_and_load_from_the_cache(trt, cudla, tmp_path, model):
    spec = _spec(model)
    engines = [_engine(spec, core, tmp_path) for core in ("dla0", "dla1")]
    try:
        assert [b["engine_capability"] for b in trt.double_state["builds"]] == ["DLA_STANDALONE"] * 2
        assert cudla.double_state["loaded_on"] == [(0, 0), (1, 1)]  # built for each core, loaded on it
        files = sorted(p.name for p in tmp_path.glob("*.dla"))
        assert len(files) == 2 and files[0].startswith(f"{model.stem}-dla0-fp16-")
        for engine in engines:
            inputs = _inputs(engine)
            outputs = engine.run(inputs)
            for got, want in zip(outputs.values(), _reference(model, inputs), strict=True):
                assert got.dtype == np.float32 and got.shape == want.shape
                np.testing.assert_allclose(got, want, atol=0.02 * max(1.0, float(np.abs(want).max())))
        formats = {t["format"] for t in engines[0].describe()["dla_io"].values()}
        assert formats == ({"CHW16"} if model == HEAD else {"DLA_HWC4", "CHW16"})
    finally:
        for engine in engines:
            engine.close()
    again = _engine(spec, "dla1", tmp_path)  # the next start: loaded, not built
    assert len(trt.double_state["builds"]) == 2 and again.loadable_path.name == files[1]
    again.close()
    assert not cudla.double_state["devices"] and not cudla.runtime.double_state["allocations"]


def test_buffers_are_registered_once_and_every_request_is_one_task(trt, cudla, tmp_path):
    engine = _engine(_spec(HEAD, cores=("dla0",)), "dla0", tmp_path)
    (device,) = cudla.double_state["devices"].values()
    registered = dict(device.registered)
    allocations = len(cudla.runtime.double_state["allocations"])
    for seed in range(4):
        inputs = _inputs(engine, seed)
        got = engine.run(inputs)["near_probability"]
        np.testing.assert_allclose(got, _reference(HEAD, inputs)[0], atol=2e-3)
    inputs_count, outputs_count = len(engine.input_specs()), len(engine.output_specs())
    assert device.registered == registered and len(registered) == inputs_count + outputs_count
    assert len(cudla.runtime.double_state["allocations"]) == allocations
    submissions = cudla.double_state["submissions"]
    assert len(submissions) == 4 and len({s["stream"] for s in submissions}) == 1
    kinds = [name for name, _ in cudla.runtime.double_state["ops"]]
    expected = (["cudaMemcpyHostToDevice"] * inputs_count + ["cudlaTask"]
                + ["cudaMemcpyDeviceToHost"] * outputs_count + ["cudaEventRecord"])
    assert kinds[-len(expected):] == expected
    assert engine.describe()["tasks"] == 4
    engine.close()


def test_int8_loadable_quantizes_inputs_with_their_scales(trt, cudla, tmp_path):
    engine = _engine(_spec(HEAD_INT8, "int8", cores=("dla0",)), "dla0", tmp_path)
    io = engine.describe()["dla_io"]
    assert io["left_features"]["format"] == "CHW32" and io["left_features"]["dtype"] == "int8"
    assert io["near_probability"]["format"] == "CHW16"  # the float output tail stays FP16
    inputs = _head_inputs_of_a_frame()
    got = engine.run(inputs)["near_probability"]
    # What the DLA computes: the translated network (Q/DQ scales taken out) on the INT8-rounded inputs.
    import onnx

    from dla_perception.runtime.tensorrt_qdq import translate

    translated = translate(onnx.load(str(HEAD_INT8)))
    rounded = {name: np.clip(np.rint(x / translated.scales[name]), -128, 127).astype(np.float32)
               * np.float32(translated.scales[name]) for name, x in inputs.items()}
    session = onnxruntime.InferenceSession(translated.model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got, session.run(None, rounded)[0], atol=2e-3)
    assert float(np.abs(got - _reference(HEAD_INT8, inputs)[0]).mean()) < 0.05  # and near the Q/DQ model
    (device,) = cudla.double_state["devices"].values()
    scale = engine._in[0]["converter"].scale
    pointer, size = next(iter(device.registered.values()))
    raw = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_int8 * size).from_address(pointer))
    first = inputs[engine._in[0]["name"]][0, 0, 0, 0]
    assert raw[0] == np.clip(np.rint(first / scale), -128, 127)  # channel 0 of pixel 0 leads CHW32
    engine.close()


def test_a_dla_fault_fails_the_request_and_the_next_one_runs(trt, cudla, tmp_path):
    engine = _engine(_spec(HEAD, cores=("dla1",)), "dla1", tmp_path)
    cudla.double_state["fail_next"] = cudla.Status.ERROR_DLA_ERR_INVALID_INPUT
    with pytest.raises(EngineError, match="ERROR_DLA_ERR_INVALID_INPUT .* on dla1"):
        engine.run(_inputs(engine))
    (output,) = engine.output_specs()
    assert engine.run(_inputs(engine))["near_probability"].shape == output.shape
    engine.close()


def test_a_hung_task_times_out_at_the_wait_limit_and_blocks_the_next_until_it_ends(trt, cudla, tmp_path,
                                                                                   monkeypatch):
    engine = _engine(_spec(HEAD, cores=("dla0",)), "dla0", tmp_path)
    engine.run(_inputs(engine))
    hang = threading.Event()
    cudla.double_state["hang"] = hang
    started = time.monotonic()
    with pytest.raises(TaskTimeout, match="not done .* ms after submission"):
        engine.run_until(_inputs(engine), started + 0.15)
    assert 0.15 <= time.monotonic() - started < 1.0
    window_ms = cudla.double_state["timeouts_set"][-1]  # the DLA drops the task after the same window
    assert 10 <= window_ms <= 150 and window_ms % 10 == 0
    monkeypatch.setattr(engine, "_set_task_timeout", lambda window: None)  # keep cuDLA's 30 s default
    cudla.set_task_timeout_in_ms(engine._device, 30_000)
    with pytest.raises(TaskTimeout, match="not done"):  # the DLA dropped the first; this one hangs on
        engine.run_until(_inputs(engine), time.monotonic() + 0.2)
    with pytest.raises(TaskTimeout, match="submitted .* ms ago is still running"):
        engine.run_until(_inputs(engine), time.monotonic() + 0.1)
    submitted = len(cudla.double_state["submissions"])
    hang.set()
    inputs = _inputs(engine, 9)
    np.testing.assert_allclose(engine.run(inputs)["near_probability"], _reference(HEAD, inputs)[0], atol=2e-3)
    assert len(cudla.double_state["submissions"]) == submitted + 1  # nothing submitted over a running task
    engine.close()


def test_close_leaves_a_running_task_alone(trt, cudla, tmp_path, monkeypatch):
    import dla_perception.runtime.cudla_engine as cudla_engine

    monkeypatch.setattr(cudla_engine, "CLOSE_WAIT_S", 0.05)
    engine = _engine(_spec(HEAD, cores=("dla0",)), "dla0", tmp_path)
    hang = threading.Event()
    cudla.double_state["hang"] = hang
    monkeypatch.setattr(engine, "_set_task_timeout", lambda window: None)  # cuDLA's 30 s: it stays hung
    with pytest.raises(TaskTimeout):
        engine.run_until(_inputs(engine), time.monotonic() + 0.05)
    engine.close()  # the double raises if a handle is destroyed under a running task
    assert cudla.double_state["devices"]
    hang.set()
    engine.rt.cudaStreamSynchronize(engine._stream)  # the task and the copies after it end inside this test


def test_a_corrupt_cached_loadable_is_rebuilt(trt, cudla, tmp_path):
    _engine(_spec(HEAD, cores=("dla0",)), "dla0", tmp_path).close()
    (loadable,) = tmp_path.glob("*.dla")
    loadable.write_bytes(b"garbage")
    engine = _engine(_spec(HEAD, cores=("dla0",)), "dla0", tmp_path)
    assert len(trt.double_state["builds"]) == 2 and engine.run(_inputs(engine))
    engine.close()


def test_a_plan_is_not_a_loadable_and_a_loadable_is_not_a_plan(trt, cudla, tmp_path):
    from dla_perception.runtime.tensorrt_build import BuildOptions, build_plan
    from dla_perception.runtime.tensorrt_engine import deserialize

    plan, _ = build_plan(trt, HEAD, BuildOptions(core="dla0", precision="fp16"))
    with pytest.raises(EngineError, match="module_load_from_memory failed .*ERROR_UMD"):
        CudlaEngine(plan, model="head", core="dla0", precision="fp16", io={}, inputs=[], outputs=[])
    loadable, _ = build_plan(trt, HEAD, BuildOptions(core="dla0", precision="fp16", gpu_fallback=False,
                                                     loadable=True))
    with pytest.raises(EngineError, match="could not deserialize"):
        deserialize(trt, loadable, "dla0")


def test_a_model_that_needs_the_gpu_is_refused_with_dla_checks_report(trt, cudla, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("ReduceMax", ["c"], ["y"], name="reduce_max", keepdims=1)],
        "gpu_tail", [helper.make_tensor_value_info("x", TensorProto.FLOAT, INPUT_SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [1.0, 1.0, 1.0])])
    path = tmp_path / "gpu_tail.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(EngineError, match="cannot be built as a DLA standalone .*ReduceMax reduce_max"):
        _engine(_spec(path, cores=("dla0",)), "dla0", tmp_path)
    assert not trt.double_state["builds"]  # refused before TensorRT is asked


def test_standalone_mode_is_refused_naming_the_missing_nvsci_calls(trt, cudla, tmp_path):
    with pytest.raises(EngineError, match="import_external_memory.*cudla_mode: hybrid"):
        _engine(_spec(HEAD, cores=("dla0",), cudla_mode="standalone"), "dla0", tmp_path)


def test_conv_model_with_partial_channel_groups(trt, cudla, tmp_path):
    path = conv_model(tmp_path / "conv.onnx", with_softmax=False)
    engine = _engine(_spec(path, cores=("dla0",)), "dla0", tmp_path)
    x = np.random.default_rng(2).standard_normal(INPUT_SHAPE).astype(np.float32)
    np.testing.assert_allclose(engine.run({"x": x})["y"], _reference(path, {"x": x})[0], atol=0.05)
    assert engine.describe()["dla_io"]["x"]["format"] == "DLA_HWC4"
    engine.close()
