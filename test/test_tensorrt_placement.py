"""The placement report on realistic inspector output and builder logs (written as TensorRT prints them,
independently of the double), and the shared logger that captures the builder's lists."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from dla_perception.runtime.tensorrt_logger import builder_placement, capture, shared_logger
from dla_perception.runtime.tensorrt_placement import classify, format_report, placement_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double


def _io(name: str) -> dict:
    return {"Name": name, "Location": "Device", "Dimensions": [1, 24, 60, 80], "Format/Datatype": "Half"}


# A DLA engine as the DETAILED inspector shows one: the DLA loadable with its nvm I/O nodes
# (NVIDIA/TensorRT#3143), a Myelin subgraph on the GPU with the same {ForeignNode[...]} naming
# (NVIDIA/TensorRT#2577) and a reformat in front of it (NVIDIA/TensorRT#2592).
DLA_ENGINE = [
    {
        "Name": "left_features to nvm",
        "LayerType": "unknown-to-us",
        "Inputs": [_io("left_features")],
        "Outputs": [],
    },
    {
        "Name": "{ForeignNode[/head/conv0/Conv.../head/up1/ConvTranspose]}",
        "LayerType": "unknown-to-us",
        "Inputs": [_io("left_features")],
        "Outputs": [_io("/head/up1/ConvTranspose_output_0")],
    },
    {"Name": "/head/up1/ConvTranspose_output_0 from nvm", "Inputs": [], "Outputs": []},
    {"Name": "left_features copy finish", "Inputs": [], "Outputs": []},
    {
        "Name": "Reformatting CopyNode for Input Tensor 0 to {ForeignNode[/head/Softmax.../head/Sigmoid]}",
        "LayerType": "Reformat",
        "Inputs": [],
        "Outputs": [],
    },
    {
        "Name": "{ForeignNode[/head/Softmax.../head/Sigmoid]}",
        "LayerType": "Myelin",
        "Inputs": [],
        "Outputs": [],
        "TacticValue": "0x0000000000000000",
    },
]
BUILDER_LOG = [
    "[I] ---------- Layers Running on DLA ----------",
    "[V] [DlaLayer] {ForeignNode[/head/conv0/Conv.../head/up1/ConvTranspose]}",
    "[I] ---------- Layers Running on GPU ----------",
    "[V] [GpuLayer] MYELIN: {ForeignNode[/head/Softmax.../head/Sigmoid]}",
]


def test_myelin_foreign_nodes_are_gpu_and_dla_io_is_overhead():
    builder = builder_placement(BUILDER_LOG)
    report = placement_report(DLA_ENGINE, dla_engine=True, builder=builder, predicted_dla_layers=20)
    assert report["subgraphs"] == 1 and report["GPU"] == 1 and report["myelin_subgraphs"] == 1
    assert report["gpu_layer_names"] == ["{ForeignNode[/head/Softmax.../head/Sigmoid]}"]
    assert (report["dla_io"], report["reformats"]) == (3, 1)
    assert report["gpu_fallback"] and report["verdict"].startswith("GPU FALLBACK: 1 DLA subgraph(s); 1 layer")
    assert report["source"] == "builder log and inspector"
    text = format_report(report)
    assert "a prediction, not the placement" in text and "overhead: 3 DLA I/O node(s)" in text


def test_a_pure_dla_engine_is_not_called_fallback_for_its_io_and_reformats():
    pure = [
        layer for layer in DLA_ENGINE if "Softmax" not in layer["Name"] or layer["LayerType"] == "Reformat"
    ]
    report = placement_report(pure, dla_engine=True, builder=builder_placement(BUILDER_LOG[:2]))
    assert report["GPU"] == 0 and not report["gpu_fallback"]
    assert report["verdict"] == "DLA: 1 DLA subgraph(s), no GPU fallback (3 DLA I/O node(s), 1 reformat(s))"


def test_a_gpu_engine_with_myelin_is_not_dla():
    """The old report counted every ForeignNode as DLA: a GPU engine read as 'on DLA'."""
    gpu = [{"Name": "{ForeignNode[/backbone/Conv.../head/Sigmoid]}", "LayerType": "Myelin"}]
    report = placement_report(gpu, dla_engine=False)
    assert report["subgraphs"] == 0 and report["verdict"] == (
        "GPU: 1 layer(s) on the GPU, 1 of them Myelin subgraph(s), none on DLA"
    )


def test_names_only_falls_back_on_the_builder_log_or_says_it_cannot_tell():
    names = [{"Name": layer["Name"]} for layer in DLA_ENGINE]
    with_log = placement_report(names, dla_engine=True, builder=builder_placement(BUILDER_LOG))
    assert (with_log["subgraphs"], with_log["GPU"]) == (1, 1)
    blind = placement_report(names, dla_engine=True)
    assert blind["subgraphs"] == 2 and "look alike" in blind["source"]
    assert classify({"Name": "conv1 + relu1"}, True, None) == "GPU"


def test_builder_placement_reads_both_log_formats():
    current = builder_placement(
        [
            "[I] ---------- Layers Running on DLA ----------",
            "[I] [DlaLayer] {ForeignNode[conv1_1...pool5]}",
            "[I] ---------- Layers Running on GPU ----------",
            "[I] [GpuLayer] SHUFFLE: shuffle_between_pool5_and_fc6",
            "[I] [GpuLayer] SOFTMAX: prob",
            "[I] Total Host Persistent Memory: 123",
        ]
    )
    assert current == {
        "DLA": ["{ForeignNode[conv1_1...pool5]}"],
        "GPU": ["SHUFFLE: shuffle_between_pool5_and_fc6", "SOFTMAX: prob"],
    }
    old = builder_placement(
        [
            "--------------- Layers running on DLA:",
            "{conv_1,batch_norm_1}, {conv_2},",
            "--------------- Layers running on GPU:",
            "Softplus_2, Cast_802,",
            "other line",
        ]
    )
    assert old == {"DLA": ["{conv_1,batch_norm_1}", "{conv_2}"], "GPU": ["Softplus_2", "Cast_802"]}
    assert builder_placement(["[I] Engine built"]) is None


def test_one_shared_logger_captures_per_thread_and_forwards_warnings(caplog):
    trt = tensorrt_double.make_tensorrt()
    logger = shared_logger(trt)
    assert shared_logger(trt) is logger and isinstance(logger, trt.ILogger)
    assert logger.min_severity == trt.ILogger.VERBOSE  # the [DlaLayer] lines are VERBOSE on current Jetsons
    other: list[str] = []

    def elsewhere() -> None:
        with capture() as lines:
            logger.log(trt.ILogger.INFO, "other thread")
            other.extend(lines)

    with caplog.at_level(logging.DEBUG), capture() as lines:
        logger.log(trt.ILogger.VERBOSE, "[DlaLayer] {ForeignNode[a...b]}")
        logger.log(trt.ILogger.VERBOSE, "Tactic: 0x01 Time: 0.1")  # tactic chatter is not kept
        logger.log(trt.ILogger.WARNING, "Layer 'x' (SOFTMAX): Unsupported on DLA.")
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert lines == ["[V] [DlaLayer] {ForeignNode[a...b]}", "[W] Layer 'x' (SOFTMAX): Unsupported on DLA."]
    assert other == ["[I] other thread"]
    assert "TensorRT: Layer 'x' (SOFTMAX): Unsupported on DLA." in caplog.text
