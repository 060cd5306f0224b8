"""Small ONNX models for the TensorRT tests (onnx.helper; the Q/DQ ones with onnxruntime's quantizer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

INPUT_SHAPE = (1, 3, 8, 8)


def _save(nodes: list, inputs: list, outputs: list, initializers: list, path: Path) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def conv_model(path: Path, with_softmax: bool = True, seed: int = 0, bias_add: bool = False) -> Path:
    """Conv -> Relu [-> Softmax (not DLA-able, Myelin on the GPU)] -> Conv [-> Add a constant bias]."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    initializers = [w1, w2]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
    ]
    if with_softmax:
        nodes.append(helper.make_node("Softmax", ["r1"], ["s1"], name="softmax", axis=1))
    nodes.append(
        helper.make_node(
            "Conv", ["s1" if with_softmax else "r1", "w2"], ["c2" if bias_add else "y"], name="conv2"
        )
    )
    if bias_add:
        initializers.append(
            numpy_helper.from_array(rng.standard_normal((2, 1, 1)).astype(np.float32), "bias")
        )
        nodes.append(helper.make_node("Add", ["c2", "bias"], ["y"], name="add_bias"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, INPUT_SHAPE)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])
    return _save(nodes, [x], [y], initializers, path)


def reference(path: Path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def qdq_model(path: Path, source: Path, samples: int = 8, seed: int = 0) -> Path:
    """`source` quantized by onnxruntime (QDQ, int8, symmetric, per-channel weights), as `quantize` does."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.data = iter(
                [{"x": rng.standard_normal(INPUT_SHAPE).astype(np.float32)} for _ in range(samples)]
            )

        def get_next(self) -> dict | None:
            return next(self.data, None)

    quantize_static(
        str(source),
        str(path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    return path


def external_data_model(folder: Path) -> Path:
    """conv_model with its weights in a separate file beside the model (onnx external data)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = conv_model(folder / "staging.onnx", with_softmax=False)
    model = onnx.load(str(path))
    onnx.save(
        model,
        str(folder / "external.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="external.weights",
        size_threshold=0,
    )
    path.unlink()
    return folder / "external.onnx"
