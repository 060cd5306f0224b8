"""The TensorRT double's DLA_STANDALONE builds follow TensorRT 10.3's documented rules ("DLA Standalone
Mode", NvInferRuntime.h kDLA_STANDALONE, "I/O Formats on DLA", trtexec --buildDLAStandalone)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double_loadable as loadable
from trt_models import conv_model


def _build(trt, path: Path, *, device=None, flags=("FP16", "DIRECT_IO"), formats=True, dtype=None):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(path))
    config = builder.create_builder_config()
    config.default_device_type = device if device is not None else trt.DeviceType.DLA
    config.DLA_core = 0
    config.engine_capability = trt.EngineCapability.DLA_STANDALONE
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for tensor, fmt in ((network.get_input(0), "DLA_HWC4"), (network.get_output(0), "CHW16")):
        tensor.dtype = trt.DataType.HALF if dtype is None else dtype
        if formats:
            tensor.allowed_formats = 1 << int(getattr(trt.TensorFormat, fmt))
    return builder.build_serialized_network(network, config), logger.messages


def test_a_standalone_build_gives_a_loadable_not_a_plan(trt, tmp_path):
    data, _ = _build(trt, conv_model(tmp_path / "conv.onnx", with_softmax=False))
    parsed = loadable.parse_loadable(data)
    assert parsed["dla_core"] == 0
    assert [(e["name"], e["format"], e["dtype"]) for e in parsed["inputs"] + parsed["outputs"]] == [
        ("x", "DLA_HWC4", "HALF"), ("y", "CHW16", "HALF")]
    assert trt.Runtime(trt.Logger()).deserialize_cuda_engine(data) is None  # only cuDLA runs it


def test_the_documented_rules_refuse_the_build(trt, tmp_path):
    path = conv_model(tmp_path / "conv.onnx", with_softmax=False)
    cases = [
        ({"device": trt.DeviceType.GPU}, "supports only DeviceType::kDLA"),
        ({"flags": ("FP16",)}, "kDIRECT_IO needs to be set"),
        ({"flags": ("FP16", "DIRECT_IO", "GPU_FALLBACK")}, "cannot fall back to the GPU"),
        ({"formats": False}, "set DLA-supported formats only"),
        ({"dtype": trt.DataType.FLOAT}, "FP16 or INT8"),
        ({"dtype": trt.DataType.INT8, "flags": ("FP16", "DIRECT_IO")}, "no dynamic range"),
    ]
    for kwargs, message in cases:
        data, messages = _build(trt, path, **kwargs)
        assert data is None and any(message in m for m in messages), (kwargs, messages)
    softmax = conv_model(tmp_path / "softmax.onnx", with_softmax=True)
    data, messages = _build(trt, softmax)
    assert data is None and any("cannot run on DLA and GPU fallback is not enabled" in m for m in messages)


def test_tensorrt_11_loadables_keep_the_models_fp16_io(tmp_path):
    """Strongly typed (11.4.1+): no precision flags, the I/O types are the model's; float32 I/O is refused."""
    import onnx
    import tensorrt_double
    from onnx import TensorProto, helper, numpy_helper

    from dla_perception.runtime.errors import EngineError
    from dla_perception.runtime.tensorrt_build import BuildOptions, build_plan

    trt11 = tensorrt_double.make_tensorrt("11.4.1", num_dla_cores=2)
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float16), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, (1, 3, 8, 8))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, (1, 4, 8, 8))
    graph = helper.make_graph([conv], "fp16", [x], [y], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "fp16.onnx")
    options = BuildOptions(core="dla1", precision="fp16", gpu_fallback=False, loadable=True)
    data, info = build_plan(trt11, tmp_path / "fp16.onnx", options)
    assert loadable.parse_loadable(data)["dla_core"] == 1
    assert info["loadable_io"]["y"] == {"dtype": "float16", "format": "CHW16", "scale": None}
    assert trt11.double_state["builds"][-1]["flags"] == ["DIRECT_IO"]
    import pytest
    from trt_models import qdq_model

    qdq = qdq_model(tmp_path / "qdq.onnx", conv_model(tmp_path / "conv.onnx", with_softmax=False))
    with pytest.raises(EngineError, match="strongly typed: a loadable's I/O keeps the model's types"):
        build_plan(trt11, qdq, BuildOptions(core="dla1", precision="int8", gpu_fallback=False, loadable=True))
