"""Backend selection in one place (runtime/backends.py), the onnxruntime execution providers it may use, and
the engine.py <-> backends dependency going one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dla_perception.runtime import backends, onnxruntime_engine
from dla_perception.runtime.config import ModelSpec
from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine

RUNTIME = Path(__file__).resolve().parent.parent / "dla_perception" / "runtime"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_engine_module_imports_no_backend():
    """engine.py defines what backends implement; it must not import them (not even inside a function)."""
    imported = _imports(RUNTIME / "engine.py")
    assert not {name for name in imported if name.startswith("dla_perception.runtime.")} - {
        "dla_perception.runtime.errors"
    }
    for backend in ("tensorrt_engine.py", "onnxruntime_engine.py", "backends.py"):
        assert (
            "dla_perception.runtime.backends" not in _imports(RUNTIME / backend) or backend == "backends.py"
        )


def test_backends_per_core_in_order():
    assert [b.name for b in backends.backends_for("cpu")] == ["onnxruntime"]
    assert [b.name for b in backends.backends_for("dla1")] == ["TensorRT", "onnxruntime"]


def test_onnxruntime_tensorrt_ep_is_refused_for_dla1_naming_the_upstream_issue(monkeypatch, tmp_path):
    monkeypatch.setattr(
        onnxruntime_engine,
        "onnxruntime_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    reason = backends._onnxruntime_unavailable("dla1")
    assert "microsoft/onnxruntime#26680" in reason and "DLA core 0" in reason
    assert backends._onnxruntime_unavailable("dla0") is None
    with pytest.raises(EngineError, match="26680"):
        OnnxRuntimeEngine(tmp_path / "m.onnx", core="dla1", precision="fp16")


def test_cuda_provider_sits_between_tensorrt_and_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(
        onnxruntime_engine,
        "onnxruntime_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    providers, wanted = OnnxRuntimeEngine._providers("dla0", "fp16", tmp_path / "cache", None)
    assert [p if isinstance(p, str) else p[0] for p in providers] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    options = providers[0][1]
    assert (
        options["trt_dla_enable"] and options["trt_dla_core"] == 0 and wanted == "TensorrtExecutionProvider"
    )
    monkeypatch.setattr(
        onnxruntime_engine, "onnxruntime_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    providers, wanted = OnnxRuntimeEngine._providers("gpu", "fp16", None, None)
    assert wanted == "CUDAExecutionProvider" and providers[-1] == "CPUExecutionProvider"


def test_an_unusable_ort_engine_cache_costs_rebuilds_not_the_engine(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(
        onnxruntime_engine,
        "onnxruntime_providers",
        lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"],
    )
    blocker = tmp_path / "cache"
    blocker.write_text("a file")
    providers, _ = OnnxRuntimeEngine._providers("gpu", "fp16", blocker, None)
    assert "trt_engine_cache_enable" not in providers[0][1] and "not usable" in caplog.text


def test_every_reason_is_reported_when_no_backend_serves(monkeypatch, tmp_path):
    monkeypatch.setattr(onnxruntime_engine, "onnxruntime_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setattr(backends, "tensorrt_importable", lambda: False)
    spec = ModelSpec("m", tmp_path / "m.onnx", ("dla1",), precision="fp16")
    with pytest.raises(EngineError) as caught:
        backends.create_engine(spec, "dla1")
    assert "TensorRT: python module 'tensorrt' not importable" in str(caught.value)
    assert "onnxruntime: onnxruntime's TensorRT execution provider cannot target dla1" in str(caught.value)
