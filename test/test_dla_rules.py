"""One small onnx.helper graph per DLA rule: the node lands on DLA inside the limits and on the GPU outside,
with a reason that names the limit. Plus partitioning (subgraphs, boundaries), versions and YOLOX-nano."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dla_perception.dla import analyze
from dla_perception.dla import rules as dla_rules

X = [1, 8, 16, 16]


def make_model(nodes, inputs, outputs, initializers=None, opset=17) -> onnx.ModelProto:
    """A model from nodes; inputs/outputs map names to shapes (None: let inference find the output)."""

    def value(name, shape, elem=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, elem, shape)

    graph = helper.make_graph(
        nodes,
        "test",
        [value(name, shape) for name, shape in inputs.items()],
        [value(name, shape) for name, shape in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), name) for name, v in (initializers or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def weights(*shape) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def placement(model, name="n", **kwargs):
    report = analyze(model, **kwargs)
    return next(n for n in report.nodes if n.name == name), report


def conv(kernel=3, stride=1, pad=1, dilation=1, maps=8):
    return make_model(
        [
            helper.make_node(
                "Conv",
                ["x", "w"],
                ["y"],
                "n",
                kernel_shape=[kernel, kernel],
                strides=[stride] * 2,
                pads=[pad] * 4,
                dilations=[dilation] * 2,
            )
        ],
        {"x": X},
        {"y": None},
        {"w": weights(maps, 8, kernel, kernel)},
    )


def unary(op, shape=X, **attrs):
    return make_model([helper.make_node(op, ["x"], ["y"], "n", **attrs)], {"x": shape}, {"y": None})


def pool(op="MaxPool", kernel=3, stride=1, pad=1):
    return unary(op, kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=[pad] * 4)


def resize(mode, scale, opset=17):
    return make_model(
        [helper.make_node("Resize", ["x", "", "s"], ["y"], "n", mode=mode)],
        {"x": X},
        {"y": None},
        {"s": np.array([1, 1, scale, scale], np.float32)},
        opset,
    )


def slice_(starts, ends, axes, steps):
    arrays = {k: np.array(v, np.int64) for k, v in zip("seap", (starts, ends, axes, steps), strict=True)}
    return make_model(
        [helper.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"], "n")], {"x": X}, {"y": None}, arrays
    )


def binary(op, other_shape, constant):
    if constant:
        return make_model(
            [helper.make_node(op, ["x", "c"], ["y"], "n")],
            {"x": X},
            {"y": None},
            {"c": weights(*other_shape)},
        )
    return make_model([helper.make_node(op, ["x", "z"], ["y"], "n")], {"x": X, "z": other_shape}, {"y": None})


def clip(low, high):
    initial = {"lo": np.array(low, np.float32), "hi": np.array(high, np.float32)}
    return make_model(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], "n")], {"x": X}, {"y": None}, initial
    )


def concat(axis):
    return make_model(
        [helper.make_node("Concat", ["x", "z"], ["y"], "n", axis=axis)], {"x": X, "z": X}, {"y": None}
    )


def reshape(shape):
    return make_model(
        [helper.make_node("Reshape", ["x", "s"], ["y"], "n")],
        {"x": X},
        {"y": None},
        {"s": np.array(shape, np.int64)},
    )


def matmul():
    return make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], "n")],
        {"x": [1, 64]},
        {"y": None},
        {"w": weights(64, 10)},
    )


def deconv(pad):
    return make_model(
        [
            helper.make_node(
                "ConvTranspose", ["x", "w"], ["y"], "n", kernel_shape=[2, 2], strides=[2, 2], pads=[pad] * 4
            )
        ],
        {"x": X},
        {"y": None},
        {"w": weights(8, 4, 2, 2)},
    )


CASES = [
    # (case id, model, expected device, words the reason must contain)
    ("conv ok", conv(), "DLA", ""),
    ("conv kernel 33", conv(kernel=33, pad=16), "GPU", "kernel"),
    ("conv stride 9", conv(kernel=9, stride=9, pad=0), "GPU", "stride"),
    ("conv pad not below kernel", conv(kernel=3, pad=3), "GPU", "smaller than the kernel"),
    ("conv 8193 maps", conv(kernel=1, pad=0, maps=8193), "GPU", "output maps"),
    ("deconv ok", deconv(0), "DLA", ""),
    ("deconv padded", deconv(1), "GPU", "padding"),
    ("maxpool ok", pool(), "DLA", ""),
    ("maxpool window 9", pool(kernel=9, pad=4), "GPU", "window"),
    ("avgpool stride 17", pool("AveragePool", kernel=2, stride=17, pad=0), "GPU", "stride"),
    ("global avgpool 8x8", unary("GlobalAveragePool", [1, 8, 8, 8]), "DLA", ""),
    ("global avgpool 16x16", unary("GlobalAveragePool"), "GPU", "window"),
    ("relu", unary("Relu"), "DLA", ""),
    ("leaky relu", unary("LeakyRelu", alpha=0.1), "DLA", ""),
    ("hardswish", unary("HardSwish"), "GPU", "activation"),
    ("clip 0..6", clip(0.0, 6.0), "DLA", ""),
    ("clip -1..1", clip(-1.0, 1.0), "GPU", "min"),
    ("add per-channel constant", binary("Add", [1, 8, 1, 1], True), "DLA", ""),
    ("mul same-shape tensors", binary("Mul", X, False), "DLA", ""),
    ("add broadcast tensors", binary("Add", [1, 1, 16, 16], False), "GPU", "broadcast"),
    ("add per-row constant", binary("Add", [1, 1, 16, 1], True), "GPU", "broadcast"),
    ("exp", unary("Exp"), "GPU", "Abs only"),
    ("abs", unary("Abs"), "DLA", ""),
    ("concat channels", concat(1), "DLA", ""),
    ("concat width", concat(3), "GPU", "channel axis"),
    ("resize nearest x2", resize("nearest", 2.0), "DLA", ""),
    ("resize linear x2", resize("linear", 2.0), "DLA", ""),
    ("resize linear x8", resize("linear", 8.0), "GPU", "linear H/W scale"),
    ("resize nearest x1.5", resize("nearest", 1.5), "GPU", "not integers"),
    ("resize cubic", resize("cubic", 2.0), "GPU", "cubic"),
    ("slice channels", slice_([0], [4], [1], [1]), "DLA", ""),
    ("slice stride 2", slice_([0], [16], [2], [2]), "GPU", "stride 1"),
    ("slice batch", slice_([0], [0], [0], [1]), "GPU", "batch"),
    ("softmax channels", unary("Softmax", axis=1), "DLA", ""),
    ("softmax 2000 wide", unary("Softmax", [1, 2000, 2, 1], axis=1), "GPU", "exceeds 1024"),
    ("softmax 2000 alone", unary("Softmax", [1, 2000, 1, 1], axis=1), "DLA", ""),
    ("transpose keeps batch", unary("Transpose", perm=[0, 2, 3, 1]), "DLA", ""),
    ("transpose moves batch", unary("Transpose", perm=[1, 0, 2, 3]), "GPU", "batch"),
    ("reshape 4-D", reshape([1, 8, 256, 1]), "DLA", ""),
    ("reshape to 2-D", reshape([1, 2048]), "GPU", "2-D"),
    ("flatten", unary("Flatten", axis=1), "GPU", "2-D"),
    ("matmul", matmul(), "GPU", "MatrixMultiply"),
    ("reduce mean", unary("ReduceMean", keepdims=1, axes=[2, 3]), "GPU", "Reduce"),
    (
        "gather",
        make_model(
            [helper.make_node("Gather", ["x", "i"], ["y"], "n", axis=1)],
            {"x": X},
            {"y": None},
            {"i": np.array([0, 2], np.int64)},
        ),
        "GPU",
        "GPU",
    ),
    (
        "instance norm",
        make_model(
            [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], "n")],
            {"x": X},
            {"y": None},
            {"s": weights(8), "b": weights(8)},
        ),
        "GPU",
        "BatchNorm",
    ),
    ("unknown op", unary("Celu"), "GPU", "activation"),
    ("lrn 5", unary("LRN", size=5), "DLA", ""),
    ("lrn 4", unary("LRN", size=4), "GPU", "window 4"),
    ("div", binary("Div", X, False), "DLA", ""),
]


@pytest.mark.parametrize("model, device, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(model, device, words):
    node, report = placement(model)
    assert node.device == device, node.reasons
    assert words in " ".join(node.reasons) + " " + node.rule_reason
    assert report.passes_strict == (device == "DLA")


def test_every_rule_has_source_and_reason():
    for rule in dla_rules.GENERAL_RULES + dla_rules.LAYER_RULES:
        assert rule.source and rule.reason and rule.certainty in ("documented", "conservative", "uncertain")
        assert rule.check is None or rule.check in __import__("dla_perception.dla.checks").dla.checks.CHECKERS


def test_dynamic_input_is_a_finding_and_falls_back():
    model = unary("Relu", ["batch", 8, 16, 16])
    node, report = placement(model)
    assert node.device == "GPU" and "dynamic" in node.reasons[0]
    assert any("dynamic" in text for text in report.findings)


def test_div_falls_back_before_tensorrt_10():
    node, _ = placement(binary("Div", X, False), trt_version="8.6")
    assert node.device == "GPU" and "not before TensorRT 10.0" in node.reasons[0]


def test_tensorrt_11_0_has_no_dla_and_11_4_needs_fp16_tensors():
    _, report = placement(unary("Relu"), trt_version="11.0")
    assert not report.dla_available and report.verdict.startswith("NO DLA") and not report.passes_strict
    node, _ = placement(unary("Relu"), trt_version="11.4")
    assert node.device == "GPU" and "float16" in node.reasons[0]


def test_comparison_needs_int8_and_a_cast():
    model = make_model(
        [
            helper.make_node("Greater", ["x", "z"], ["g"], "n"),
            helper.make_node("Cast", ["g"], ["y"], "cast", to=TensorProto.FLOAT),
        ],
        {"x": X, "z": X},
        {"y": None},
    )
    assert placement(model, precision="int8")[0].device == "DLA"
    node, _ = placement(model, precision="fp16")
    assert node.device == "GPU" and "INT8 only" in node.reasons[0]


def test_bad_version_and_precision_are_value_errors():
    with pytest.raises(ValueError, match="TensorRT"):
        analyze(unary("Relu"), trt_version="banana")
    with pytest.raises(ValueError, match="fp16 or int8"):
        analyze(unary("Relu"), precision="fp32")
    with pytest.raises(ValueError, match="no ONNX file"):
        analyze("/nonexistent/model.onnx")


def test_shape_subgraph_is_folded_not_gpu():
    """Shape -> Gather -> Concat feeding a Reshape is computed at build time: no layers, reshape on DLA."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], "shape"),
        helper.make_node("Gather", ["s", "i"], ["batch"], "gather", axis=0),
        helper.make_node("Concat", ["batch", "rest"], ["target"], "concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], "n"),
    ]
    model = make_model(
        nodes, {"x": X}, {"y": None}, {"i": np.array([0], np.int64), "rest": np.array([8, 256, 1], np.int64)}
    )
    report = analyze(model)
    devices = {n.name: n.device for n in report.nodes}
    assert devices == {"shape": None, "gather": None, "concat": None, "n": "DLA"}
    assert report.passes_strict and report.counts()["folded"] == 3


def test_conv_batchnorm_relu_fuse_into_one_layer():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], "conv", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], "bn"),
        helper.make_node("Relu", ["bn"], ["y"], "relu"),
    ]
    inits = {
        "w": weights(8, 8, 3, 3),
        "s": weights(8),
        "b": weights(8),
        "m": weights(8),
        "v": np.ones(8, np.float32),
    }
    report = analyze(make_model(nodes, {"x": X}, {"y": None}, inits))
    fused = {n.name: n.fused_into for n in report.nodes}
    assert fused == {"conv": None, "bn": "conv", "relu": "conv"}
    assert report.counts()["layers"] == 1 and len(report.subgraphs) == 1


def test_gpu_node_in_the_middle_splits_subgraphs_and_makes_boundaries():
    """conv -> exp (GPU) -> conv: two DLA subgraphs, one boundary each way."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], "conv1", kernel_shape=[1, 1]),
        helper.make_node("Exp", ["a"], ["b"], "exp"),
        helper.make_node("Conv", ["b", "w"], ["y"], "conv2", kernel_shape=[1, 1]),
    ]
    report = analyze(make_model(nodes, {"x": X}, {"y": None}, {"w": weights(8, 8, 1, 1)}))
    assert [s.nodes for s in report.subgraphs] == [["conv1"], ["conv2"]]
    assert [(b.tensor, b.from_device, b.to_device) for b in report.device_boundaries] == [
        ("a", "DLA", "GPU"),
        ("b", "GPU", "DLA"),
    ]
    assert report.subgraphs[0].outputs == ["a"] and report.subgraphs[1].inputs == ["b"]
    assert not report.passes_strict and "GPU FALLBACK" in report.verdict


def test_parallel_gpu_branch_does_not_merge_subgraphs_into_a_cycle():
    """conv1 feeds both exp (GPU) and add; add also needs exp: conv1 and add cannot share a loadable."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], "conv1", kernel_shape=[1, 1]),
        helper.make_node("Exp", ["a"], ["b"], "exp"),
        helper.make_node("Add", ["a", "b"], ["y"], "add"),
    ]
    report = analyze(make_model(nodes, {"x": X}, {"y": None}, {"w": weights(8, 8, 1, 1)}))
    assert [s.nodes for s in report.subgraphs] == [["conv1"], ["add"]]
    assert any(b.from_device == b.to_device == "DLA" for b in report.boundaries)


def test_more_than_16_subgraphs_warns():
    nodes, previous = [], "x"
    for index in range(17):
        nodes += [
            helper.make_node("Relu", [previous], [f"r{index}"], f"relu{index}"),
            helper.make_node("Exp", [f"r{index}"], [f"e{index}"], f"exp{index}"),
        ]
        previous = f"e{index}"
    report = analyze(make_model(nodes, {"x": X}, {previous: None}))
    assert len(report.subgraphs) == 17
    assert any("16" in text for text in report.warnings)


def test_report_to_dict_is_json_able_and_complete():
    import json

    report = analyze(conv())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passes_strict"] and data["counts"]["dla_layers"] == 1
    assert {"nodes", "subgraphs", "boundaries", "verdict", "findings", "trt_version"} <= set(data)
    assert data["nodes"][0]["device"] == "DLA" and data["nodes"][0]["source"]
    # the same keys as the engine build's placement report, so prediction and build compare directly
    assert data["placement"]["DLA"] == 1 and data["placement"]["GPU"] == 0
    assert data["placement"]["dla_subgraph_names"] == ["{ForeignNode[n...n]}"]
    assert data["placement"]["verdict"].startswith("DLA: ")


def test_yolox_nano_is_analysed(shared_data):
    path = shared_data / "models" / "yolox_nano.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    report = analyze(path)
    counts = report.counts()
    assert counts["layers"] > 300 and counts["dla_layers"] > counts["gpu_layers"] > 0
    gpu_ops = {n.op for n in report.gpu_layers}
    assert "Slice" in gpu_ops  # the Focus stem slices with stride 2
    assert "MaxPool" in gpu_ops  # SPP windows 9 and 13
    assert report.subgraphs and report.device_boundaries
    assert not report.passes_strict


def test_input_shapes_fix_dynamic_dimensions():
    model = make_model(
        [helper.make_node("Conv", ["x", "w"], ["y"], "n", kernel_shape=[3, 3], pads=[1] * 4)],
        {"x": ["batch", 8, "height", "width"]},
        {"y": ["batch", 8, "height", "width"]},
        {"w": weights(8, 8, 3, 3)},
    )
    assert not analyze(model).passes_strict
    report = analyze(model, input_shapes={"x": [1, 8, 64, 64]})
    assert report.passes_strict and not report.findings
    with pytest.raises(ValueError, match="no graph input named 'images'"):
        analyze(model, input_shapes={"images": [1, 8, 64, 64]})
    with pytest.raises(ValueError, match="rank 4"):
        analyze(model, input_shapes={"x": [1, 8, 64]})


def test_a_failed_general_rule_is_named():
    node, _ = placement(unary("Relu", ["batch", 8, 16, 16]))
    assert node.rule == "static-shapes" and node.certainty == "documented"
    node, _ = placement(unary("Flatten", axis=1))
    assert node.rule == "rank-4" and node.certainty == "conservative"
    node, _ = placement(unary("Relu"))
    assert node.rule == "activation"


def test_bi3d_style_plane_head_is_dla_end_to_end():
    """The kind of head design.md asks for (batched over planes): Conv/ReLU/Mul/Add/Concat/ConvTranspose/
    Sigmoid on static shapes is one DLA subgraph with no boundary."""
    planes, channels, height, width = 4, 24, 36, 60
    inits, nodes = {}, []

    def conv(name, source, out_ch, in_ch, kernel=3, stride=1, relu=True):
        inits[f"{name}_w"] = weights(out_ch, in_ch, kernel, kernel)
        inits[f"{name}_b"] = weights(out_ch)
        target = f"{name}_c" if relu else name
        nodes.append(
            helper.make_node(
                "Conv",
                [source, f"{name}_w", f"{name}_b"],
                [target],
                name,
                kernel_shape=[kernel, kernel],
                strides=[stride] * 2,
                pads=[kernel // 2] * 4,
            )
        )
        if relu:
            nodes.append(helper.make_node("Relu", [target], [name], f"{name}_relu"))
        return name

    def up(name, source, out_ch, in_ch, skip):
        inits[f"{name}_w"] = weights(in_ch, out_ch, 2, 2)
        nodes.append(
            helper.make_node(
                "ConvTranspose",
                [source, f"{name}_w"],
                [f"{name}_u"],
                name,
                kernel_shape=[2, 2],
                strides=[2, 2],
            )
        )
        nodes.append(helper.make_node("Add", [f"{name}_u", skip], [f"{name}_s"], f"{name}_add"))
        nodes.append(helper.make_node("Relu", [f"{name}_s"], [name], f"{name}_relu"))
        return name

    nodes.append(helper.make_node("Mul", ["left", "right"], ["product"], "product"))
    nodes.append(helper.make_node("Concat", ["left", "right", "product"], ["stacked"], "stack", axis=1))
    e1 = conv("enc1", conv("enter", "stacked", 32, 3 * channels, kernel=1), 32, 32)
    e2 = conv("enc2", conv("down2", e1, 48, 32, stride=2), 48, 48)
    e3 = conv("enc3", conv("down3", e2, 64, 48, stride=2), 64, 64)
    d2 = conv("dec2", up("up2", e3, 48, 64, e2), 48, 48)
    d1 = conv("dec1", up("up1", d2, 32, 48, e1), 32, 32)
    logits = conv("classify", d1, 1, 32, kernel=1, relu=False)
    nodes.append(helper.make_node("Sigmoid", [logits], ["near"], "probability"))
    shape = [planes, channels, height, width]
    model = make_model(nodes, {"left": shape, "right": shape}, {"near": [planes, 1, height, width]}, inits)
    report = analyze(model)
    assert report.passes_strict, report.format_text()
    assert len(report.subgraphs) == 1 and not report.boundaries
    assert report.subgraphs[0].inputs == ["left", "right"] and report.subgraphs[0].outputs == ["near"]


def test_strongly_typed_line_flags_float32_models():
    report = analyze(unary("Relu"), trt_version="11.4")
    assert any("strongly typed" in text for text in report.findings)
    assert not analyze(unary("Relu"), trt_version="10.3").findings
