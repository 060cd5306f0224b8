"""`backend: cudla` in the engine manager: deadlines through cuDLA (a hung DLA task makes its core stuck, the
other core answers, a probe restores it), fallbacks when cuDLA cannot run, and `build-engine --loadable`."""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double
import tensorrt_double_loadable

from dla_perception.nodes.diagnostics import WARN, DiagnosticsReport
from dla_perception.runtime.config import EnginesConfig, ModelSpec
from dla_perception.runtime.cudla_engine import cudla_unavailable
from dla_perception.runtime.manager import EngineManager
from dla_perception.tools.cli import main

REPO = Path(__file__).resolve().parent.parent
HEAD = REPO / "models" / "proximity" / "head.onnx"


def _config(tmp_path: Path, **kwargs) -> EnginesConfig:
    spec = ModelSpec("head", HEAD, kwargs.pop("cores", ("dla0", "dla1")), precision="fp16", backend="cudla",
                     **kwargs)
    return EnginesConfig({"head": spec}, tmp_path / "engines", {})


def _head_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    import onnx

    rng = np.random.default_rng(seed)
    graph = onnx.load(str(HEAD)).graph
    shapes = {i.name: tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in graph.input}
    return {name: rng.random(shape).astype(np.float32) for name, shape in shapes.items()}


def _head_output_shape() -> tuple[int, ...]:
    import onnx

    (output,) = onnx.load(str(HEAD)).graph.output
    return tuple(d.dim_value for d in output.type.tensor_type.shape.dim)


def _until(condition, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_hung_dla_task_makes_its_core_stuck_the_other_core_answers_and_a_probe_restores_it(
        trt, cudla, tmp_path):
    config = _config(tmp_path, deadline_ms=400.0)  # the double runs the head in onnxruntime: ~40 ms idle
    hang = threading.Event()
    events = []
    with EngineManager(config, available_cores=["dla0", "dla1", "cpu"]) as manager:
        manager.add_health_listener(lambda event: events.append((event.kind, event.core)))
        assert manager.placements()[0]["backends"] == {"dla0": "cudla", "dla1": "cudla"}
        for worker in manager._models["head"].workers:  # warm both cores (first runs are slower)
            worker.engine.run(_head_inputs())
        cudla.double_state["hang"] = {0: hang}  # DLA core 0 stops answering
        started = time.monotonic()
        outputs = manager.infer("head", _head_inputs(1))  # pinned: dla0 first
        assert time.monotonic() - started < 2.0 and outputs["near_probability"].shape == _head_output_shape()
        assert ("stuck", "dla0") in events
        health = manager.health()["head"]
        assert health["state"] == "degraded" and "dla0" in health["stuck"]
        assert manager.statistics()["engines"]["head@dla1"]["inferences"] >= 1
        hang.set()
        assert _until(lambda: manager.health()["head"]["state"] == "ok"), manager.health()
        assert _until(lambda: ("restored", "dla0") in events), events  # the event follows the state


def test_without_libcudla_the_manager_falls_back_to_tensorrt_loudly(trt, tmp_path, monkeypatch, caplog):
    """The real cuda.bindings.cudla (no libcudla here) refuses; TensorRT serves the same core, and says so."""
    import dla_perception.runtime.tensorrt_engine as tensorrt_engine

    monkeypatch.setattr(tensorrt_engine, "_polygraphy_cuda", tensorrt_double.HostCuda)
    reason = cudla_unavailable("dla0")
    assert reason and "\n" not in reason and ("libcudla" in reason or "cuda.bindings.cudla" in reason)
    with caplog.at_level(logging.WARNING, "dla_perception"), EngineManager(
            _config(tmp_path, cores=("dla0",)), available_cores=["dla0", "cpu"]) as manager:
        (placement,) = manager.placements()
        assert placement["backends"] == {"dla0": "tensorrt"}
        (fallback,) = placement["fallbacks"]
        assert fallback["requested"] == fallback["used"] == "dla0" and fallback["backend"] == "tensorrt"
        assert "cuDLA refused, TensorRT used" in fallback["reason"] and reason in fallback["reason"]
        assert manager.infer("head", _head_inputs())["near_probability"].shape == _head_output_shape()
        statistics = manager.statistics()
    assert "backend cuDLA refused, falling back to TensorRT" in caplog.text
    assert statistics["engines"]["head@dla0"]["backend_fallback"] == fallback["reason"]
    statuses = DiagnosticsReport().statuses(statistics, [placement])
    (engine_status,) = [s for s in statuses if s.name.endswith("engine head@dla0")]
    assert engine_status.level == WARN and "runs on tensorrt: cuDLA refused" in engine_status.message
    assert engine_status.values["backend"] == "tensorrt"


def test_without_cudla_or_tensorrt_the_model_falls_back_to_the_cpu(tmp_path):
    with EngineManager(_config(tmp_path, cores=("dla0",)), available_cores=["dla0", "cpu"]) as manager:
        (placement,) = manager.placements()
        assert placement["active"] == ["cpu"] and placement["backends"] == {"cpu": "onnxruntime"}
        assert "cuDLA: " in placement["fallbacks"][0]["reason"]
        assert "TensorRT: " in placement["fallbacks"][0]["reason"]


def test_cudla_is_tried_first_only_when_asked_for():
    from dla_perception.runtime.backends import backends_for

    assert [b.name for b in backends_for("dla0", "cudla")] == ["cuDLA", "TensorRT", "onnxruntime"]
    assert [b.name for b in backends_for("dla0")] == ["TensorRT", "onnxruntime"]
    assert [b.name for b in backends_for("gpu", "cudla")] == ["TensorRT", "onnxruntime"]  # DLA only
    assert [b.name for b in backends_for("dla1", "onnxruntime")] == ["onnxruntime", "TensorRT"]


def test_a_missing_binding_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings.cudla", None)
    reason = cudla_unavailable("dla1")
    assert "cuda.bindings.cudla not importable" in reason and "cuda-bindings 13.x" in reason


def test_cudla_counts_its_cores(cudla):
    assert cudla_unavailable("dla1") is None
    cudla_one = type(cudla)("one-core")
    vars(cudla_one).update(vars(cudla), device_get_count=lambda: 1)
    sys.modules["cuda.bindings.cudla"] = cudla_one
    assert cudla_unavailable("dla1") == "cuDLA reports 1 DLA core(s), so dla1 is absent"


def test_build_engine_writes_a_loadable(trt, tmp_path, capsys):
    out = tmp_path / "head.dla"
    assert main(["build-engine", str(HEAD), "--core", "dla1", "--loadable", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes().startswith(tensorrt_double_loadable.LOADABLE_MAGIC)
    assert "DLA standalone" in text and "I/O  left_features: float16 CHW16" in text
    (build,) = trt.double_state["builds"]
    assert build["engine_capability"] == "DLA_STANDALONE" and build["DLA_core"] == 1
    assert build["flags"] == ["DIRECT_IO", "FP16"]  # no GPU_FALLBACK
    assert main(["build-engine", str(HEAD), "--core", "gpu", "--loadable"]) == 2
    assert "applies to dla0/dla1 only" in capsys.readouterr().err
