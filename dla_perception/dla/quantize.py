"""Explicit INT8: Q/DQ nodes inserted by onnxruntime's quantization tool, in the form TensorRT and DLA take.

`onnxruntime.quantization.quantize_static` in QDQ format with:
- int8 activations, symmetric, one scale per tensor (TensorRT's INT8 is symmetric, activations per tensor;
  DLA's scales are per tensor, which is what the TensorRT 10 DLA build translates them into);
- int8 weights, symmetric, per output channel (axis 0 for Conv, 1 for ConvTranspose);
- calibration by entropy (the default, like TensorRT's IInt8EntropyCalibrator2), min-max or percentile,
  fed in chunks so that the histograms, not every intermediate tensor, stay in memory.
The result is checked: every Q/DQ pair must translate into per-tensor scales (runtime/tensorrt_qdq.py),
and the Q/DQ model must run in onnxruntime.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

METHODS = ("entropy", "minmax", "percentile")
CHUNK = 8  # calibration samples per onnxruntime collect_data call (bounds the intermediate outputs kept)


class _ChunkedReader:
    """onnxruntime's CalibrationDataReader protocol with set_range (used by its CalibStridedMinMax option)."""

    def __init__(self, samples: Sequence[dict[str, np.ndarray]]) -> None:
        self.samples = list(samples)
        self.set_range(0, len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iterator = iter(self.samples[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iterator, None)

    def rewind(self) -> None:
        self.set_range(0, len(self.samples))


LAYOUT_OPS = {"Concat", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
ACTIVATION_OPS = {"Sigmoid", "Tanh", "Softmax", "Relu", "Clip", "LeakyRelu"}


def output_tail(model_path: Path) -> list[str]:
    """The nodes that make each output's final values: the layout ops producing a graph output (Concat,
    Reshape, ...) and the activations just before them (the scores' Sigmoid), not the convolutions."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    tail: list[str] = []
    pending = [producer[value.name] for value in graph.output if value.name in producer]
    while pending:
        node = pending.pop()
        if node.name in tail or not node.name:
            continue
        if node.op_type in LAYOUT_OPS:
            tail.append(node.name)
            pending += [producer[name] for name in node.input if name in producer]
        elif node.op_type in ACTIVATION_OPS:
            tail.append(node.name)
    return tail


def quantize_model(
    model_path: Path,
    out_path: Path,
    samples: Sequence[dict[str, np.ndarray]],
    method: str = "entropy",
    percentile: float = 99.999,
    float_outputs: bool = True,
) -> dict[str, Any]:
    """Write the Q/DQ model for `samples` (dicts of input name -> array); returns a summary.

    float_outputs: each output's tail (`output_tail`) stays unquantized, FP16 on DLA: an output that
    concatenates channels of different ranges (the detector's box offsets and scores) would otherwise share
    one INT8 scale, and scores quantized to 1/127 steps lose their ranking (measured on 60 held-out frames:
    mAP@0.5 drop 0.040 with everything quantized, 0.018 with the Concats float, 0.002 with the Sigmoids too).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from dla_perception.dla.graph import lower_ir_version
    from dla_perception.runtime.tensorrt_qdq import translate

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if len(samples) < 1:
        raise ValueError("quantization needs at least one calibration sample")
    samples = list(samples)
    usable = len(samples) - len(samples) % CHUNK if len(samples) >= CHUNK else len(samples)
    samples = samples[:usable]  # onnxruntime's chunked collection needs a whole number of chunks
    calibrate = {
        "entropy": CalibrationMethod.Entropy,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    options: dict[str, Any] = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QDQOpTypePerChannelSupportToAxis": {"ConvTranspose": 1},
        "CalibStridedMinMax": min(CHUNK, len(samples)),
    }
    if method == "percentile":
        options["CalibPercentile"] = percentile
    logging.getLogger().disabled, was = (
        True,
        logging.getLogger().disabled,
    )  # its "consider pre-processing" noise
    try:
        # onnxruntime prints its calibration progress: keep stdout for the tool's JSON summary
        with (
            tempfile.TemporaryDirectory(prefix="dla_perception_quantize_") as work,
            contextlib.redirect_stdout(sys.stderr),
        ):
            staged = Path(work) / "quantized.onnx"
            excluded = output_tail(model_path) if float_outputs else []
            quantize_static(
                str(model_path),
                str(staged),
                _ChunkedReader(samples),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calibrate,
                nodes_to_exclude=excluded,
                extra_options=options,
            )
            model = onnx.load(str(staged))
    finally:
        logging.getLogger().disabled = was
    lower_ir_version(model)
    onnx.checker.check_model(model)
    translation = translate(model)  # raises TranslationError when a placement has no per-tensor scale
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {
        "model": str(model_path),
        "out": str(out_path),
        "method": method,
        "samples": len(samples),
        "quantize_nodes": counts.get("QuantizeLinear", 0),
        "dequantize_nodes": counts.get("DequantizeLinear", 0),
        "activation_scales": len(translation.scales),
        "quantized_weights": translation.weights,
        "bytes": out_path.stat().st_size,
        "float_output_nodes": excluded,
    }


def max_difference(
    float_model: Path, quantized_model: Path, samples: Sequence[dict[str, np.ndarray]]
) -> float:
    """Largest absolute output difference of the two models on `samples` (onnxruntime, CPU)."""
    import onnxruntime

    sessions = [
        onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        for p in (float_model, quantized_model)
    ]
    worst = 0.0
    for sample in samples:
        a, b = (s.run(None, sample) for s in sessions)
        worst = max(worst, *(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)))
    return worst
