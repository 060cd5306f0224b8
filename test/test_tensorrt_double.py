"""The sanctioned TensorRT double follows TensorRT 10.3's headers and bindings: each test names the line.

If one of these fails, the double drifted from TensorRT, and the backend tests built on it lose their
meaning; fix the double against the cited source, not the test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from polygraphy.exception import PolygraphyException

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tensorrt_double
from trt_models import INPUT_SHAPE, conv_model, external_data_model


def _network(trt, path: Path, flags: int = 0):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(path)), [parser.get_error(i).desc() for i in range(parser.num_errors)]
    return builder, network


def test_builder_flag_values_are_the_headers(trt):
    # NvInfer.h enum class BuilderFlag: kFP16 = 0, kINT8 = 1, kDEBUG = 2, kGPU_FALLBACK = 3, kREFIT = 4,
    # kDISABLE_TIMING_CACHE = 5, kTF32 = 6, kSPARSE_WEIGHTS = 7, kSAFETY_SCOPE = 8,
    # kOBEY_PRECISION_CONSTRAINTS = 9, kPREFER_PRECISION_CONSTRAINTS = 10, kDIRECT_IO = 11
    flags = trt.BuilderFlag
    assert (flags.FP16, flags.INT8, flags.DEBUG, flags.GPU_FALLBACK, flags.REFIT) == (0, 1, 2, 3, 4)
    assert (flags.OBEY_PRECISION_CONSTRAINTS, flags.PREFER_PRECISION_CONSTRAINTS, flags.DIRECT_IO) == (
        9,
        10,
        11,
    )
    assert not hasattr(flags, "CHECK_PRECISION")
    # NvInferRuntimeBase.h enum class DataType: kFP8 = 6, kBF16 = 7, kINT64 = 8, kINT4 = 9
    assert (trt.DataType.FP8, trt.DataType.BF16, trt.DataType.INT64, trt.DataType.INT4) == (6, 7, 8, 9)
    with pytest.raises(TypeError):
        trt.nptype(trt.DataType.BF16)  # no numpy equivalent
    # NvInfer.h enum class LayerType: kCONVOLUTION = 0, kCONSTANT = 19, kQUANTIZE = 32, kDEQUANTIZE = 33
    assert (trt.LayerType.CONVOLUTION, trt.LayerType.CONSTANT, trt.LayerType.QUANTIZE) == (0, 19, 32)


def test_tensorrt_11_has_no_precision_flags_or_calibrators():
    # TensorRT 11.4.1 docs, "Strongly Typed Networks for DLA": kFP16, kINT8,
    # kPREFER_/kOBEY_PRECISION_CONSTRAINTS
    # "were removed in TensorRT 11.0"; implicit quantization (calibrators) is gone with them.
    trt11 = tensorrt_double.make_tensorrt("11.4.1")
    for name in ("FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"):
        assert not hasattr(trt11.BuilderFlag, name)
    assert trt11.BuilderFlag.GPU_FALLBACK == 3
    with pytest.raises(AttributeError, match="no attribute 'IInt8EntropyCalibrator2'"):
        _ = trt11.IInt8EntropyCalibrator2


def test_removed_trt8_apis_raise(trt, tmp_path):
    builder, network = _network(trt, conv_model(tmp_path / "m.onnx"))
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    for obj, name in [
        (engine, "num_bindings"),
        (engine, "get_binding_shape"),
        (engine, "max_batch_size"),
        (context, "execute_async_v2"),
        (context, "execute_async"),
        (trt, "build_engine"),
        (builder, "max_batch_size"),
    ]:
        with pytest.raises(AttributeError, match="removed"):
            getattr(obj, name)
    with pytest.raises(AttributeError):
        builder.create_builder_config().max_workspace_size = 1 << 30


def test_custom_logger_must_call_the_base_init(trt):
    # Logger.html: "To implement a custom logger, ensure that you explicitly instantiate the base class in
    # __init__(): trt.ILogger.__init__(self)"
    class Forgetful(trt.ILogger):
        def __init__(self) -> None:
            pass

        def log(self, severity, msg) -> None:
            pass

    with pytest.raises(TypeError, match="must call trt.ILogger.__init__"):
        trt.Builder(Forgetful())


def test_runtime_dla_core_defaults_to_minus_one_and_loads_on_core_0(trt, tmp_path):
    # NvInferRuntime.h IRuntime::setDLACore: "Sets the DLA core used by the network. Defaults to -1."
    # microsoft/onnxruntime#26680: a runtime whose core was never set ran every DLA engine on core 0.
    builder, network = _network(trt, conv_model(tmp_path / "m.onnx", with_softmax=False))
    config = builder.create_builder_config()
    config.default_device_type, config.DLA_core = trt.DeviceType.DLA, 1
    config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    runtime = trt.Runtime(trt.Logger())
    assert runtime.DLA_core == -1
    engine = runtime.deserialize_cuda_engine(plan)
    assert engine is not None and engine.dla_core == 0  # not refused: it lands on core 0
    trt.double_state["num_dla_cores"] = 0
    desktop = trt.Runtime(trt.Logger())
    desktop.DLA_core = 1  # "if getNbDLACores() returns 0, then this function does nothing"
    assert desktop.DLA_core == -1


def test_parser_adds_constant_and_shuffle_layers(trt, tmp_path):
    # onnx-tensorrt imports an ElementWise operand initializer as an IConstantLayer and broadcasts it with an
    # IShuffleLayer ("(Unnamed Layer* N) [Shuffle]", as in TensorRT's own logs): layers are not ONNX nodes.
    _, network = _network(trt, conv_model(tmp_path / "m.onnx", with_softmax=False, bias_add=True))
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    assert [layer.type for layer in layers] == [
        trt.LayerType.CONVOLUTION,
        trt.LayerType.ACTIVATION,
        trt.LayerType.CONVOLUTION,
        trt.LayerType.CONSTANT,
        trt.LayerType.SHUFFLE,
        trt.LayerType.ELEMENTWISE,
    ]
    assert layers[3].name == "bias" and layers[4].name.startswith("(Unnamed Layer* ")
    assert network.num_layers == 6  # the ONNX graph has 4 nodes


def test_parse_needs_the_path_for_external_weights(trt, tmp_path):
    # pyOnnx: parse(model, path=None): "path - The path to the model file. Only required if the model has
    # externally stored weights"; parse_from_file(model: str) reads them beside the file.
    path = external_data_model(tmp_path / "ext")
    logger = trt.Logger()
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse(path.read_bytes()) and "external" in parser.get_error(0).desc()
    assert trt.OnnxParser(network, logger).parse(path.read_bytes(), str(path))
    assert trt.OnnxParser(trt.Builder(logger).create_network(0), logger).parse_from_file(str(path))


def test_calibrator_exceptions_are_printed_and_swallowed(trt, tmp_path, capsys):
    # python/src/infer/pyInt8.cpp: getBatch/writeCalibrationCache catch std::exception, print
    # "[ERROR] Exception caught in get_batch(): <what>" to std::cerr, and return false / nothing.
    builder, network = _network(trt, conv_model(tmp_path / "m.onnx", with_softmax=False))

    class Failing(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            raise RuntimeError("camera bag unreadable")

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache) -> None:
            raise OSError("disk full")

    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = Failing()
    assert builder.build_serialized_network(network, config) is None  # no batch: "no scaling factors"
    assert "[ERROR] Exception caught in get_batch(): camera bag unreadable" in capsys.readouterr().err


def test_inspector_json_is_shaped_like_the_real_one(trt, tmp_path):
    # NVIDIA/TensorRT#3143 (DLA I/O nodes "<t> to nvm", "<t> from nvm", "<t> copy finish"), #2577/#2308
    # (Myelin "{ForeignNode[...]}", "LayerType": "Myelin"), #2592 ("Reformatting CopyNode ...",
    # "LayerType": "Reformat"),
    # trt-engine-explorer layer.py (Name, LayerType, Inputs, Outputs, Metadata per DETAILED layer).
    builder, network = _network(trt, conv_model(tmp_path / "m.onnx"))
    config = builder.create_builder_config()
    config.default_device_type, config.DLA_core = trt.DeviceType.DLA, 0
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    logger = builder.logger
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    info = json.loads(
        engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    )
    by_name = {layer["Name"]: layer for layer in info["Layers"]}
    assert by_name["{ForeignNode[softmax...softmax]}"]["LayerType"] == "Myelin"
    assert {"x to nvm", "r1 from nvm", "r1 copy finish", "y from nvm"} <= set(by_name)
    assert by_name["Reformatting CopyNode for Input Tensor 0 to softmax"]["LayerType"] == "Reformat"
    assert all({"Name", "LayerType", "Inputs", "Outputs"} <= set(layer) for layer in info["Layers"])
    assert info["Bindings"] == ["x", "y"]
    names_only = builder.create_builder_config()
    names_only.set_flag(trt.BuilderFlag.FP16)
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, names_only)
    )
    plain = json.loads(
        engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    )
    assert plain["Layers"] == ["conv1 + relu1", "{ForeignNode[softmax...softmax]}", "conv2"]


def test_builder_logs_the_placement_lists_at_verbose(trt, tmp_path):
    # trtexec logs: "---------- Layers Running on DLA ----------" /
    # "[DlaLayer] {ForeignNode[conv1_1...pool5]}" /
    # "[GpuLayer] SOFTMAX: prob"; Jetson test suites grep "[V] [TRT] [DlaLayer]"; jetson_dla_tutorial#3:
    # "Layer '...' (CONSTANT): Unsupported on DLA. Switching this layer's device type to GPU."
    seen = []

    class Listening(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, msg) -> None:
            seen.append((severity, msg))

    logger = Listening()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(conv_model(tmp_path / "m.onnx")))
    config = builder.create_builder_config()
    config.default_device_type, config.DLA_core = trt.DeviceType.DLA, 0
    for flag in (trt.BuilderFlag.FP16, trt.BuilderFlag.GPU_FALLBACK):
        config.set_flag(flag)
    builder.build_serialized_network(network, config)
    verbose = [msg for severity, msg in seen if severity == trt.ILogger.VERBOSE]
    assert "[DlaLayer] {ForeignNode[conv1...relu1]}" in verbose
    assert "[GpuLayer] MYELIN: {ForeignNode[softmax...softmax]}" in verbose
    assert (
        trt.ILogger.WARNING,
        "Layer 'softmax' (SOFTMAX): Unsupported on DLA. Switching this layer's device type to GPU.",
    ) in seen


def test_host_cuda_copies_like_polygraphy_0_53():
    # polygraphy/cuda/cuda.py (0.53.6): DeviceView._check_host_buffer logs a dtype mismatch
    # (G_LOGGER.error) and
    # copies anyway; raises for non-contiguous buffers, copy_from a larger host buffer, copy_to a smaller one.
    cuda = tensorrt_double.HostCuda()
    device = cuda.DeviceArray(shape=(2, 3), dtype=np.float32)
    assert device.nbytes == 24 and device.dtype == np.float32
    device.copy_from(np.arange(6, dtype=np.int32).reshape(2, 3))  # same size, other dtype: logged, copied
    assert cuda.errors and "does not match" in cuda.errors[0]
    with pytest.raises(PolygraphyException, match="larger"):
        device.copy_from(np.zeros(7, np.float32))
    with pytest.raises(PolygraphyException, match="smaller"):
        device.copy_to(np.zeros(5, np.float32))
    with pytest.raises(PolygraphyException, match="contiguous"):
        device.copy_from(np.zeros((3, 2), np.float32).T)
    host = np.zeros(8, np.float32)
    device.copy_from(np.zeros(6, np.float32))
    device.copy_from(np.ones(4, np.float32))  # a smaller host buffer fills the start
    device.copy_to(host)  # copies the device's 24 bytes into a larger host buffer
    np.testing.assert_array_equal(host, [1, 1, 1, 1, 0, 0, 0, 0])
    pointer = device.ptr
    assert device.resize((1, 3)).ptr == pointer and device.resize((4, 4)).ptr != pointer  # grows: realloc
    device.free()
    assert (device.ptr, device.shape) == (0, ())


def test_execution_reads_and_writes_the_bound_addresses(trt, tmp_path):
    path = conv_model(tmp_path / "m.onnx")
    builder, network = _network(trt, path)
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(
        builder.build_serialized_network(network, builder.create_builder_config())
    )
    context = engine.create_execution_context()
    x = np.random.default_rng(0).standard_normal(INPUT_SHAPE).astype(np.float32)
    y = np.zeros((1, 2, 8, 8), np.float32)
    assert not context.execute_async_v3(1)  # no addresses yet
    context.set_tensor_address("x", x.ctypes.data)
    context.set_tensor_address("y", y.ctypes.data)
    assert context.execute_async_v3(1)
    from trt_models import reference

    np.testing.assert_allclose(y, reference(path, x), rtol=1e-5, atol=1e-5)
