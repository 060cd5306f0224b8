"""One graph per --fix rewrite: the rewritten model computes the same outputs in onnxruntime (or, for the
approximate resize rewrite, only on request), and the placement counts improve as stated."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_dla_rules import X, make_model, weights

from dla_perception.dla import analyze
from dla_perception.dla.fix_pooling import split_overlapping, split_window
from dla_perception.dla.fixes import fix_model
from dla_perception.dla.verify import compare


def fixed(model, approximate=False):
    exact, approximated = fix_model(model, approximate=approximate)
    check = compare(model, exact.model, trials=1)
    assert check.passed, check.per_output
    return exact, approximated, check


def ops(model) -> list[str]:
    return [node.op_type for node in model.graph.node]


def test_window_factoring():
    assert split_window(16) == [8, 2]
    assert split_window(64) == [8, 8]
    assert split_window(14) == [7, 2]
    assert split_window(13) is None
    assert split_overlapping(9) == [5, 5]
    assert split_overlapping(13) == [7, 7]
    assert split_overlapping(20) == [8, 7, 7]
    assert sum(w - 1 for w in split_overlapping(31)) == 30


def test_global_average_pool_16x16_becomes_a_chain():
    model = make_model([helper.make_node("GlobalAveragePool", ["x"], ["y"], "gap")], {"x": X}, {"y": None})
    assert not analyze(model).passes_strict
    exact, _, check = fixed(model)
    assert ops(exact.model) == ["AveragePool", "AveragePool"]
    assert [r.fix for r in exact.applied] == ["global-pooling"]
    assert check.max_abs_diff < 1e-5
    assert analyze(exact.model).passes_strict


def test_global_pool_that_does_not_factor_is_left_with_a_reason():
    model = make_model(
        [helper.make_node("GlobalMaxPool", ["x"], ["y"], "gmp")], {"x": [1, 4, 13, 13]}, {"y": None}
    )
    exact, _, _ = fixed(model)
    assert ops(exact.model) == ["GlobalMaxPool"] and "13x13" in exact.skipped[0]


def test_large_max_pools_split_exactly():
    """YOLOX's SPP: MaxPool 9 and 13 with stride 1 and 'same' padding."""
    nodes = [
        helper.make_node("MaxPool", ["x"], ["a"], "p9", kernel_shape=[9, 9], pads=[4] * 4),
        helper.make_node("MaxPool", ["x"], ["b"], "p13", kernel_shape=[13, 13], pads=[6] * 4, strides=[2, 2]),
    ]
    model = make_model(nodes, {"x": X}, {"a": None, "b": None})
    exact, _, check = fixed(model)
    assert ops(exact.model) == ["MaxPool"] * 4 and check.max_abs_diff == 0.0
    report = analyze(exact.model)
    assert report.passes_strict, [n.reasons for n in report.gpu_nodes]


def test_large_average_pool_splits_only_when_not_overlapping():
    nodes = [
        helper.make_node("AveragePool", ["x"], ["a"], "blocks", kernel_shape=[16, 16], strides=[16, 16]),
        helper.make_node("AveragePool", ["x"], ["b"], "sliding", kernel_shape=[9, 9], pads=[4] * 4),
    ]
    model = make_model(nodes, {"x": X}, {"a": None, "b": None})
    exact, _, _ = fixed(model)
    assert [r.node for r in exact.applied] == ["blocks"]
    assert any("sliding" in reason for reason in exact.skipped)
    assert sorted(n.name for n in analyze(exact.model).gpu_nodes) == ["sliding"]


def test_reduce_mean_and_gemm_classifier_head():
    """ReduceMean(H, W) + Gemm: both GPU before; after, pools and a 1x1 Conv on DLA, one reshape left."""
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], "mean", keepdims=0),
        helper.make_node("Gemm", ["m", "w", "b"], ["y"], "fc", transB=1, alpha=0.5, beta=2.0),
    ]
    inits = {"axes": np.array([2, 3], np.int64), "w": weights(10, 8), "b": weights(10)}
    model = make_model(nodes, {"x": X}, {"y": None}, inits, opset=18)
    before = analyze(model).counts()
    exact, _, check = fixed(model)
    after = analyze(exact.model)
    assert {r.fix for r in exact.applied} >= {"reduce-mean", "matmul-to-conv", "cancel-reshapes"}
    assert check.max_abs_diff < 1e-4
    assert before["gpu_layers"] == 2 and before["dla_layers"] == 0
    assert [n.op for n in after.gpu_layers] == ["Reshape"]  # the final [1, 10] output stays 2-D
    assert ops(exact.model).count("AveragePool") == 2 and "Conv" in ops(exact.model)


def test_reduce_mean_keepdims_over_width_only():
    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], "mean", axes=[3], keepdims=1)]
    model = make_model(nodes, {"x": X}, {"y": None}, opset=13)
    exact, _, _ = fixed(model)
    assert ops(exact.model) == ["AveragePool", "AveragePool"]
    assert analyze(exact.model).passes_strict


def test_matmul_on_tokens_becomes_conv():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], "proj")]
    model = make_model(nodes, {"x": [2, 5, 64]}, {"y": None}, {"w": weights(64, 16)})
    exact, _, check = fixed(model)
    assert ops(exact.model) == ["Reshape", "Conv", "Reshape"]
    assert check.max_abs_diff < 1e-4
    conv = next(n for n in analyze(exact.model).nodes if n.op == "Conv")
    assert conv.device == "DLA"


def test_matmul_with_two_computed_inputs_is_left():
    nodes = [helper.make_node("MatMul", ["x", "z"], ["y"], "attention")]
    model = make_model(nodes, {"x": [1, 4, 8], "z": [1, 8, 4]}, {"y": None})
    exact, _, _ = fixed(model)
    assert ops(exact.model) == ["MatMul"] and "constant" in exact.skipped[0]


def softmax_tail(features: str, weights_name: str) -> list:
    """1x1 classifier, then NHWC Softmax over classes: Transpose, flatten pixels, Softmax, back to NCHW.

    Reads initialisers `flat` ([1, pixels, classes]) and `grid` ([1, H, W, classes]); writes `y`."""
    return [
        helper.make_node("Conv", [features, weights_name], ["logits"], "classifier", kernel_shape=[1, 1]),
        helper.make_node("Transpose", ["logits"], ["nhwc"], "to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "flat"], ["pixels"], "flatten"),
        helper.make_node("Softmax", ["pixels"], ["probs"], "softmax", axis=-1),
        helper.make_node("Reshape", ["probs", "grid"], ["probs_nhwc"], "unflatten"),
        helper.make_node("Transpose", ["probs_nhwc"], ["y"], "to_nchw", perm=[0, 3, 1, 2]),
    ]


def softmax_behind_transposes():
    """An NHWC segmentation tail: Transpose, flatten pixels, Softmax over classes, back to NCHW."""
    nodes = [
        *softmax_tail("x", "w"),
    ]
    inits = {
        "w": weights(4, 8, 1, 1),
        "flat": np.array([1, 256, 4], np.int64),
        "grid": np.array([1, 16, 16, 4], np.int64),
    }
    return make_model(nodes, {"x": X}, {"y": None}, inits)


def test_softmax_behind_transposes_moves_to_the_channel_axis():
    model = softmax_behind_transposes()
    before = analyze(model)
    assert {n.name for n in before.gpu_nodes} == {"flatten", "softmax", "unflatten"}
    exact, _, check = fixed(model)
    assert ops(exact.model) == ["Conv", "Softmax"]
    assert exact.model.graph.node[1].attribute[0].i == 1  # axis 1 = channels
    assert check.max_abs_diff < 1e-6
    assert analyze(exact.model).passes_strict


def test_bilinear_resize_becomes_nearest_only_on_request():
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["y"], "up", mode="linear")]
    model = make_model(nodes, {"x": X}, {"y": None}, {"s": np.array([1, 1, 8, 8], np.float32)})
    exact, approximated, _ = fixed(model)
    assert not exact.applied and not analyze(exact.model).passes_strict
    _, approximated, _ = fixed(model, approximate=True)
    assert [(r.fix, r.exact) for r in approximated.applied] == [("resize-nearest", False)]
    assert analyze(approximated.model).passes_strict
    assert compare(model, approximated.model, trials=1).max_abs_diff > 1e-3  # it does change results


def seed_scenario():
    """The seed's segmentation net: pooling windows over 8, bilinear resize x16, Softmax behind transposes."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], "conv1", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"], "relu1"),
        helper.make_node("MaxPool", ["r1"], ["spp"], "spp9", kernel_shape=[9, 9], pads=[4] * 4),
        helper.make_node(
            "AveragePool", ["r1"], ["ctx"], "context16", kernel_shape=[16, 16], strides=[16, 16]
        ),
        helper.make_node("Resize", ["ctx", "", "s16"], ["up"], "upsample16", mode="linear"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], "global"),
        helper.make_node("Add", ["spp", "up"], ["a"], "merge"),
        helper.make_node("Resize", ["g", "", "s32"], ["g_scaled"], "broadcast_global", mode="nearest"),
        helper.make_node("Add", ["a", "g_scaled"], ["a2"], "merge_global"),
        *softmax_tail("a2", "w2"),
    ]
    inits = {
        "w1": weights(8, 3, 3, 3),
        "w2": weights(5, 8, 1, 1),
        "s16": np.array([1, 1, 16, 16], np.float32),
        "s32": np.array([1, 1, 32, 32], np.float32),
        "flat": np.array([1, 1024, 5], np.int64),
        "grid": np.array([1, 32, 32, 5], np.int64),
    }
    return make_model(nodes, {"x": [1, 3, 32, 32]}, {"y": None}, inits)


def test_seed_scenario_before_and_after_counts():
    model = seed_scenario()
    before = analyze(model)
    assert sorted(n.name for n in before.gpu_layers) == [
        "context16",
        "flatten",
        "global",
        "softmax",
        "spp9",
        "unflatten",
        "upsample16",
    ]
    exact, approximated, check = fixed(model, approximate=True)
    assert check.max_abs_diff < 1e-4
    fixes = sorted({r.fix for r in exact.applied})
    assert fixes == [
        "cancel-reshapes",
        "cancel-transposes",
        "global-pooling",
        "large-pooling",
        "softmax-before-reshape",
        "softmax-transposed-axis",
    ]
    after_exact = analyze(exact.model)
    assert [n.op for n in after_exact.gpu_layers] == ["Resize"]  # bilinear x16 needs the opt-in
    after = analyze(approximated.model)
    assert after.passes_strict and len(after.subgraphs) == 1 and not after.boundaries
    counts_before, counts_after = before.counts(), after.counts()
    assert counts_before["gpu_layers"] == 7 and counts_after["gpu_layers"] == 0
    assert counts_before["subgraphs"] > 1 and counts_before["boundaries"] > 0


@pytest.mark.parametrize("trials", [1, 3])
def test_compare_reports_a_real_difference(trials):
    model = make_model([helper.make_node("Relu", ["x"], ["y"], "relu")], {"x": X}, {"y": None})
    other = make_model([helper.make_node("Sigmoid", ["x"], ["y"], "sig")], {"x": X}, {"y": None})
    result = compare(model, other, trials=trials)
    assert result.max_abs_diff > 0.1 and not result.passed and result.trials == trials
    assert compare(model, model).max_abs_diff == 0.0


def test_strided_slices_become_depthwise_convs():
    """A space-to-depth stem: four strided slices of the image, concatenated on channels."""
    nodes = [
        helper.make_node("Slice", ["x", f"s{i}", "e", "axes", "steps"], [f"q{i}"], f"slice{i}")
        for i in range(4)
    ] + [helper.make_node("Concat", [f"q{i}" for i in range(4)], ["y"], "stack", axis=1)]
    inits = {f"s{i}": np.array([i // 2, i % 2], np.int64) for i in range(4)}
    inits |= {
        "e": np.array([1 << 30, 1 << 30], np.int64),
        "axes": np.array([2, 3], np.int64),
        "steps": np.array([2, 2], np.int64),
    }
    model = make_model(nodes, {"x": [1, 3, 32, 32]}, {"y": None}, inits)
    assert sorted(n.name for n in analyze(model).gpu_nodes) == [f"slice{i}" for i in range(4)]
    exact, _, check = fixed(model)
    assert ops(exact.model) == ["Conv"] * 4 + ["Concat"] and check.max_abs_diff == 0.0
    assert analyze(exact.model).passes_strict


def test_strided_slice_that_stops_early_is_left():
    nodes = [helper.make_node("Slice", ["x", "s", "e", "axes", "steps"], ["y"], "cut")]
    inits = {
        "s": np.array([0, 0], np.int64),
        "e": np.array([8, 10], np.int64),
        "axes": np.array([2, 3], np.int64),
        "steps": np.array([2, 2], np.int64),
    }
    model = make_model(nodes, {"x": X}, {"y": None}, inits)
    exact, _, _ = fixed(model)
    assert ops(exact.model) == ["Slice"] and "end" in exact.skipped[0]


def test_yolox_nano_fix_moves_the_stem_and_spp_onto_dla(shared_data):
    path = shared_data / "models" / "yolox_nano.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    import onnx

    model = onnx.load(str(path))
    before = analyze(model)
    exact, _, check = fixed(model)
    after = analyze(exact.model)
    assert check.max_abs_diff == 0.0
    assert before.counts()["gpu_layers"] == 15 and after.counts()["gpu_layers"] == 5
    assert {n.op for n in after.gpu_layers} == {"Reshape", "Concat", "Transpose"}  # the 3-D decode tail
    assert len(after.subgraphs) == 1


def test_strided_slice_that_also_picks_channels():
    nodes = [helper.make_node("Slice", ["x", "s", "e", "axes", "steps"], ["y"], "pick")]
    inits = {
        "s": np.array([2, 1], np.int64),
        "e": np.array([6, 1 << 30], np.int64),
        "axes": np.array([1, 3], np.int64),
        "steps": np.array([1, 4], np.int64),
    }
    model = make_model(nodes, {"x": X}, {"y": None}, inits)
    exact, _, check = fixed(model)
    assert ops(exact.model) == ["Slice", "Conv"] and check.max_abs_diff == 0.0
    assert analyze(exact.model).passes_strict


def test_squeeze_and_excitation_gate_is_expanded_by_nearest_resize():
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["pooled"], "squeeze"),
        helper.make_node("Conv", ["pooled", "w"], ["logits"], "excite", kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["logits"], ["gate"], "sigmoid"),
        helper.make_node("Mul", ["x", "gate"], ["y"], "scale"),
    ]
    model = make_model(nodes, {"x": [1, 8, 64, 64]}, {"y": None}, {"w": weights(8, 8, 1, 1)})
    assert sorted(n.name for n in analyze(model).gpu_nodes) == ["scale", "squeeze"]
    exact, _, check = fixed(model)
    assert "broadcast-to-resize" in {r.fix for r in exact.applied}
    assert ops(exact.model).count("Resize") == 2  # 64 = 32 x 2
    assert check.max_abs_diff < 1e-6
    assert analyze(exact.model).passes_strict


def test_max_pool_with_one_wide_axis():
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], "wide", kernel_shape=[1, 12], strides=[1, 3])]
    model = make_model(nodes, {"x": X}, {"y": None})
    exact, _, check = fixed(model)
    assert [r.node for r in exact.applied] == ["wide"] and check.max_abs_diff == 0.0
    assert analyze(exact.model).passes_strict
