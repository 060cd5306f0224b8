"""`dla-perception dla-check`: text and JSON output, --strict exit codes, --fix writing a verified model."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import helper
from test_dla_fixes import seed_scenario
from test_dla_rules import X, make_model

from dla_perception.dla import analyze
from dla_perception.tools.cli import main


@pytest.fixture
def seed_path(tmp_path):
    path = tmp_path / "seed.onnx"
    onnx.save(seed_scenario(), str(path))
    return path


@pytest.fixture
def dla_only_path(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"], "relu")], {"x": X}, {"y": None}), str(path))
    return path


def test_text_report_lists_gpu_nodes_and_ends_with_the_verdict(seed_path, capsys):
    assert main(["dla-check", str(seed_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("verdict: GPU FALLBACK: 7 of")
    assert any("spp9" in line and "window [9, 9] outside 1-8" in line for line in out)
    assert any(line.startswith("DLA subgraph 0:") for line in out)
    assert any(line.startswith("boundary DLA->GPU") for line in out)


def test_strict_exit_codes(seed_path, dla_only_path, capsys):
    assert main(["dla-check", str(seed_path), "--strict"]) == 1
    assert main(["dla-check", str(dla_only_path), "--strict"]) == 0
    assert "verdict: DLA: all 1 layers on DLA" in capsys.readouterr().out


def test_json_is_one_object_with_the_report(seed_path, capsys):
    assert main(["dla-check", str(seed_path), "--json", "--trt", "10.7", "--precision", "int8"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trt_version"] == "10.7" and data["precision"] == "int8"
    assert data["counts"]["gpu_layers"] == 7 and not data["passes_strict"]
    spp = next(n for n in data["nodes"] if n["name"] == "spp9")
    assert spp["device"] == "GPU" and spp["rule"] == "pooling" and "DLA Supported Layers" in spp["source"]


def test_fix_writes_a_verified_model_and_strict_checks_the_fixed_one(seed_path, tmp_path, capsys):
    out_path = tmp_path / "fixed" / "seed_dla.onnx"
    code = main(["dla-check", str(seed_path), "--fix", str(out_path), "--approximate", "--strict", "--json"])
    data = json.loads(capsys.readouterr().out)
    fix = data["fix"]
    assert code == 0 and fix["written"] and out_path.is_file()
    assert fix["verification"]["passed"] and fix["verification"]["max_abs_diff"] < 1e-4
    assert fix["approximation"]["max_abs_diff"] > 0  # bilinear -> nearest changes values, and says so
    assert fix["before"]["gpu_layers"] == 7 and fix["after"]["gpu_layers"] == 0
    assert analyze(out_path).passes_strict


def test_fix_without_approximation_still_fails_strict_on_the_bilinear_resize(seed_path, tmp_path, capsys):
    out_path = tmp_path / "seed_exact.onnx"
    assert main(["dla-check", str(seed_path), "--fix", str(out_path), "--strict"]) == 1
    text = capsys.readouterr().out
    assert "exact rewrites verified in onnxruntime: max abs diff" in text and "(ok)" in text
    gpu_line = next(line for line in text.splitlines() if line.strip().startswith("gpu_layers"))
    assert gpu_line.split() == ["gpu_layers", "7", "->", "1"] and out_path.is_file()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["dla-check", str(tmp_path / "missing.onnx")]) == 2
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    assert main(["dla-check", str(junk)]) == 2
    assert main(["dla-check", str(junk), "--approximate"]) == 2
    assert main(["dla-check", str(junk), "--trt", "7.1"]) == 2
    errors = capsys.readouterr().err
    assert "no ONNX file" in errors and "not a line this check knows" in errors


def test_input_shape_makes_a_dynamic_model_static(tmp_path, capsys):
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"], "relu")],
        {"x": ["batch", 8, 16, 16]},
        {"y": ["batch", 8, 16, 16]},
    )
    path, fixed_path = tmp_path / "dynamic.onnx", tmp_path / "static.onnx"
    onnx.save(model, str(path))
    assert main(["dla-check", str(path), "--strict"]) == 1
    assert "finding: input 'x' has dynamic or unknown shape" in capsys.readouterr().out
    assert main(["dla-check", str(path), "--strict", "--input-shape", "x:1x8x16x16"]) == 0
    assert (
        main(["dla-check", str(path), "--input-shape", "x:2x8x16x16", "--fix", str(fixed_path), "--strict"])
        == 0
    )
    dims = onnx.load(str(fixed_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 8, 16, 16]
    capsys.readouterr()
    assert main(["dla-check", str(path), "--input-shape", "x:1xbadx16"]) == 2
    assert main(["dla-check", str(path), "--input-shape", "images:1x8x16x16"]) == 2
    errors = capsys.readouterr().err
    assert "NAME:1x3x416x416" in errors and "no graph input named 'images'" in errors
