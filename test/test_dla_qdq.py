"""dla-check on Q/DQ graphs: the placements DLA takes become INT8 scales, the others stay on the GPU (with
the reason), and the project's int8 models pass --strict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dla_perception.dla import analyze
from dla_perception.runtime.config import load_engines_config
from dla_perception.runtime.tensorrt_qdq import TranslationError, translate
from dla_perception.tools.cli import main

REPO = Path(__file__).resolve().parent.parent
INT8_MODELS = [
    REPO / "models" / "proximity" / "head_int8.onnx",
    REPO / "models" / "detector" / "detector_int8.onnx",
]


def qdq_graph(
    path: Path, *, act_scale=0.05, zero=0, zero_type=TensorProto.INT8, q_feeds_conv=False, dq_without_q=False
) -> Path:
    """x -> Q/DQ -> Conv (DQ int8 weights, per channel) -> Q/DQ -> Relu -> y."""
    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    scale = np.asarray(act_scale, np.float32)
    inits = [
        numpy_helper.from_array(weights, "w_q"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(4, np.int8), "w_zero"),
        numpy_helper.from_array(scale, "x_scale"),
        helper.make_tensor("x_zero", zero_type, list(np.shape(zero)), np.ravel(zero).tolist()),
        numpy_helper.from_array(np.asarray(0.1, np.float32), "c_scale"),
        numpy_helper.from_array(np.asarray(0, np.int8), "c_zero"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"], name="x_q", axis=1),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="w_dq", axis=0),
    ]
    if dq_without_q:
        nodes.append(helper.make_node("DequantizeLinear", ["x", "c_scale", "c_zero"], ["x_dq"], name="x_dq"))
        nodes[0] = helper.make_node("Identity", ["x"], ["x_q"], name="unused")
    else:
        nodes.append(
            helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"], name="x_dq", axis=1)
        )
    conv_in = "x_q" if q_feeds_conv else "x_dq"
    nodes += [
        helper.make_node("Conv", [conv_in, "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "c_scale", "c_zero"], ["c_q"], name="c_q"),
        helper.make_node("DequantizeLinear", ["c_q", "c_scale", "c_zero"], ["c_dq"], name="c_dq"),
        helper.make_node("Relu", ["c_dq"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def test_qdq_pairs_and_quantized_weights_are_scales_not_layers(tmp_path):
    report = analyze(qdq_graph(tmp_path / "m.onnx"))
    assert report.passes_strict and report.precision == "int8"
    by_name = {node.name: node for node in report.nodes}
    assert by_name["x_q"].device is None and "INT8 scale of 'x'" in by_name["x_q"].reasons[0]
    assert by_name["w_dq"].device is None and "folded into the layer" in by_name["w_dq"].reasons[0]
    assert by_name["conv"].device == "DLA" and any("explicitly quantized" in f for f in report.findings)
    assert any("carry no INT8 scale" in w and "'y'" not in w and "y" in w for w in report.warnings)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"act_scale": [0.05, 0.05, 0.05]}, "per-channel activation scale"),
        ({"zero": 3}, "zero point is not 0"),
        ({"zero_type": TensorProto.UINT8}, "uint8 quantization"),
        ({"q_feeds_conv": True}, "feeds a layer directly"),
        ({"dq_without_q": True}, "no QuantizeLinear produced"),
    ],
)
def test_placements_that_int8_scales_cannot_express_stay_on_the_gpu(tmp_path, kwargs, reason):
    path = qdq_graph(tmp_path / "m.onnx", **kwargs)
    report = analyze(path)
    assert not report.passes_strict
    assert any(reason in text for node in report.gpu_nodes for text in node.reasons), report.format_text()
    with pytest.raises(TranslationError):  # and build-engine could not translate them for DLA either
        translate(onnx.load(str(path)))


def test_tensorrt_11_4_takes_quantized_tensors_as_typed(tmp_path):
    report = analyze(qdq_graph(tmp_path / "m.onnx"), trt_version="11.4")
    conv = next(node for node in report.nodes if node.name == "conv")
    assert conv.device == "DLA"  # its float32 tensors carry INT8 scales: strongly typed INT8
    relu = next(node for node in report.nodes if node.name == "relu")
    assert relu.device == "GPU" and relu.rule == "strongly-typed-fp16"  # its output y is plain float32


@pytest.mark.parametrize("path", INT8_MODELS, ids=lambda p: p.name)
def test_the_project_int8_models_pass_strict(path, capsys):
    if not path.is_file():
        pytest.skip(f"{path} not shipped")
    assert main(["dla-check", str(path), "--strict", "--trt", "10.3"]) == 0
    assert "DLA: all" in capsys.readouterr().out
    translated = translate(onnx.load(str(path)))  # what build-engine builds for DLA on TensorRT 10
    assert translated.scales and translated.weights


def test_the_int8_engines_example_runs_its_dla_models_int8():
    config = load_engines_config(REPO / "config" / "engines.int8.yaml")
    dla = [spec for spec in config.models.values() if any(core.startswith("dla") for core in spec.cores)]
    assert dla and all(spec.precision == "int8" and spec.onnx.name.endswith("_int8.onnx") for spec in dla)
    for spec in dla:
        assert analyze(spec.onnx, trt_version="10.3", precision="int8").passes_strict
