"""Every model that config/engines.yaml declares for a DLA core must pass `dla-check --strict`: nothing may
fall back to the GPU on the TensorRT line JetPack 6 ships (10.3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dla_perception.dla import analyze
from dla_perception.runtime.config import load_engines_config
from dla_perception.tools.cli import main

ENGINES_FILE = Path(__file__).resolve().parent.parent / "config" / "engines.yaml"
TRT_VERSION = "10.3"


def dla_models():
    config = load_engines_config(ENGINES_FILE, require_files=False)
    return [spec for spec in config.models.values() if any(core.startswith("dla") for core in spec.cores)]


def test_engines_file_declares_a_dla_model():
    assert dla_models(), "config/engines.yaml declares no model for a DLA core"


@pytest.mark.parametrize("spec", dla_models(), ids=lambda spec: spec.name)
def test_dla_model_passes_strict_check(spec, capsys):
    if not spec.onnx.is_file():
        pytest.skip(f"{spec.name}: {spec.onnx} does not exist yet")
    precision = spec.precision if spec.precision in ("fp16", "int8") else "fp16"
    report = analyze(spec.onnx, trt_version=TRT_VERSION, precision=precision)
    assert report.passes_strict, report.format_text()
    command = ["dla-check", str(spec.onnx), "--strict", "--trt", TRT_VERSION, "--precision", precision]
    assert main(command) == 0
