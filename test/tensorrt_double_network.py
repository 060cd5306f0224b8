"""Part of THE ONE SANCTIONED TEST DOUBLE (see tensorrt_double.py): loggers, the network and the ONNX parser.

The parser adds the layers onnx-tensorrt adds: an IConstantLayer for each initializer that a layer takes as
a tensor (ElementWise, Concatenation, MatrixMultiply, Quantize/Dequantize operands), broadcast by an
IShuffleLayer named "(Unnamed Layer* N) [Shuffle]" when its rank is lower, as TensorRT's logs show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from tensorrt_double_types import DataType, LayerType, Severity, Strict, TensorFormat, state

_FROM_ONNX = {
    onnx.TensorProto.FLOAT: DataType.FLOAT,
    onnx.TensorProto.FLOAT16: DataType.HALF,
    onnx.TensorProto.INT8: DataType.INT8,
    onnx.TensorProto.INT32: DataType.INT32,
    onnx.TensorProto.BOOL: DataType.BOOL,
    onnx.TensorProto.UINT8: DataType.UINT8,
    onnx.TensorProto.INT64: DataType.INT64,
}

# ONNX operator -> the layer type onnx-tensorrt creates for it.
LAYER_OF_OP = {
    "Conv": LayerType.CONVOLUTION,
    "ConvTranspose": LayerType.DECONVOLUTION,
    "Relu": LayerType.ACTIVATION,
    "Sigmoid": LayerType.ACTIVATION,
    "Tanh": LayerType.ACTIVATION,
    "LeakyRelu": LayerType.ACTIVATION,
    "Clip": LayerType.ACTIVATION,
    "MaxPool": LayerType.POOLING,
    "AveragePool": LayerType.POOLING,
    "GlobalAveragePool": LayerType.POOLING,
    "Add": LayerType.ELEMENTWISE,
    "Sub": LayerType.ELEMENTWISE,
    "Mul": LayerType.ELEMENTWISE,
    "Div": LayerType.ELEMENTWISE,
    "Max": LayerType.ELEMENTWISE,
    "Min": LayerType.ELEMENTWISE,
    "Pow": LayerType.ELEMENTWISE,
    "Concat": LayerType.CONCATENATION,
    "BatchNormalization": LayerType.SCALE,
    "Softmax": LayerType.SOFTMAX,
    "Resize": LayerType.RESIZE,
    "Reshape": LayerType.SHUFFLE,
    "Flatten": LayerType.SHUFFLE,
    "Transpose": LayerType.SHUFFLE,
    "Squeeze": LayerType.SHUFFLE,
    "Unsqueeze": LayerType.SHUFFLE,
    "MatMul": LayerType.MATRIX_MULTIPLY,
    "Gemm": LayerType.MATRIX_MULTIPLY,
    "ReduceMean": LayerType.REDUCE,
    "QuantizeLinear": LayerType.QUANTIZE,
    "DequantizeLinear": LayerType.DEQUANTIZE,
    "Slice": LayerType.SLICE,
    "Gather": LayerType.GATHER,
    "Cast": LayerType.CAST,
    "Identity": LayerType.IDENTITY,
    "PRelu": LayerType.PARAMETRIC_RELU,
    "Abs": LayerType.UNARY,
    "Exp": LayerType.UNARY,
    "Pad": LayerType.PADDING,
    "Constant": LayerType.CONSTANT,
}
# Layers that take their constant operands as tensors: the parser adds a Constant layer for each.
TENSOR_OPERANDS = {
    LayerType.ELEMENTWISE,
    LayerType.CONCATENATION,
    LayerType.MATRIX_MULTIPLY,
    LayerType.QUANTIZE,
    LayerType.DEQUANTIZE,
}


# -- logging -------------------------------------------------------------------------------------------


class ILogger:
    """tensorrt.ILogger: a custom logger must call `trt.ILogger.__init__(self)` (Logger.html) and
    implement log(severity, msg); "the logger used to create an IBuilder, IRuntime or IRefitter is used
    for all objects created through that interface"."""

    Severity = Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (
        Severity.INTERNAL_ERROR,
        Severity.ERROR,
        Severity.WARNING,
        Severity.INFO,
        Severity.VERBOSE,
    )

    def __init__(self) -> None:
        self._double_initialised = True
        self.min_severity = Severity.WARNING

    def log(self, severity: Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    """tensorrt.Logger(min_severity=WARNING): the built-in logger; the double keeps messages instead of
    printing them."""

    def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = Severity(min_severity)
        self.messages: list[str] = []

    def log(self, severity: Severity, msg: str) -> None:
        if Severity(severity) <= self.min_severity:
            self.messages.append(msg)


def checked_logger(logger: Any) -> ILogger:
    if not isinstance(logger, ILogger):
        raise TypeError(f"expected a tensorrt.ILogger, got {type(logger).__name__}")
    if not getattr(logger, "_double_initialised", False):
        raise TypeError(f"{type(logger).__name__}.__init__() must call trt.ILogger.__init__(self) (pybind11)")
    return logger


def emit(logger: ILogger, severity: Severity, message: str) -> None:
    """How TensorRT reports: every message goes to the application's logger, which filters."""
    logger.log(Severity(severity), message)


# -- network and parser ---------------------------------------------------------------------------------


class ITensor(Strict):
    __slots__ = ("name", "shape", "dtype", "allowed_formats", "is_network_input", "is_network_output")

    def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType, is_input: bool) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype
        self.allowed_formats = (1 << len(TensorFormat)) - 1  # "By default all formats are allowed"
        self.is_network_input, self.is_network_output = is_input, not is_input


class ILayer(Strict):
    __slots__ = ("name", "type", "precision", "_op", "_inputs", "_outputs", "_absorbed_by")

    def __init__(
        self, name: str, layer_type: LayerType, op: str, inputs: list[str], outputs: list[str]
    ) -> None:
        self.name, self.type, self.precision = name, layer_type, DataType.FLOAT
        self._op, self._inputs, self._outputs = op, inputs, outputs
        self._absorbed_by: str | None = None  # parser-added layer folded into this consumer when built


class INetworkDefinition(Strict):
    __slots__ = ("flags", "_inputs", "_outputs", "_layers", "onnx_bytes")

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._layers: list[ILayer] = []
        self.onnx_bytes = b""

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    num_layers = property(lambda self: len(self._layers))

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]


class ParserError(Strict):
    __slots__ = ("_desc",)

    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc


class OnnxParser(Strict):
    """tensorrt.OnnxParser: parse(model: buffer, path: str = None) ("path ... only required if the model has
    externally stored weights") and parse_from_file(model: str) (pyOnnx docs)."""

    __slots__ = ("network", "logger", "_errors")

    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self.network, self.logger, self._errors = network, checked_logger(logger), []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def parse_from_file(self, model: str) -> bool:
        state()["parsed"].append(("file", str(model)))
        try:
            proto = onnx.load(str(model))  # external data is resolved beside the file
        except Exception as exc:
            return self._fail(f"failed to load ONNX file {model}: {exc}")
        return self._import(proto)

    def parse(self, model: bytes, path: str | None = None) -> bool:
        state()["parsed"].append(("bytes", path))
        try:
            proto = onnx.load_from_string(bytes(model))
            if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
                if path is None:
                    return self._fail("the model has external weights: pass its path (parse_from_file)")
                onnx.external_data_helper.load_external_data_for_model(proto, str(Path(path).parent))
        except Exception as exc:
            return self._fail(f"ModelImporter: failed to parse ONNX: {exc}")
        return self._import(proto)

    def _fail(self, message: str) -> bool:
        self._errors.append(ParserError(message))
        emit(self.logger, Severity.ERROR, message)
        return False

    def _import(self, proto: onnx.ModelProto) -> bool:
        try:
            onnx.checker.check_model(proto)
            inferred = onnx.shape_inference.infer_shapes(proto)
        except Exception as exc:
            return self._fail(f"ModelImporter: invalid ONNX model: {exc}")
        graph = inferred.graph
        initializers = {init.name: len(init.dims) for init in graph.initializer}
        ranks = {
            v.name: len(v.type.tensor_type.shape.dim)
            for v in (*graph.value_info, *graph.input, *graph.output)
        }
        layers: list[ILayer] = []
        for index, node in enumerate(graph.node):
            layer_type = LAYER_OF_OP.get(node.op_type)
            if layer_type is None:
                return self._fail(f"No importer registered for op: {node.op_type}")
            name = node.name or f"{node.op_type}_{index}"
            if layer_type in TENSOR_OPERANDS:
                rank = max((ranks.get(i, 0) for i in node.input if i not in initializers), default=0)
                for operand in (i for i in node.input if i in initializers):
                    layers.append(ILayer(operand, LayerType.CONSTANT, "Constant", [], [operand]))
                    layers[-1]._absorbed_by = name
                    if initializers[operand] < rank:  # broadcast: a Shuffle adds the missing axes
                        shuffle = ILayer(
                            f"(Unnamed Layer* {len(layers)}) [Shuffle]",
                            LayerType.SHUFFLE,
                            "Reshape",
                            [operand],
                            [f"{operand}_broadcast"],
                        )
                        shuffle._absorbed_by = name
                        layers.append(shuffle)
            inputs = [i for i in node.input if i and i not in initializers]
            layers.append(ILayer(name, layer_type, node.op_type, inputs, list(node.output)))

        def tensor(value: onnx.ValueInfoProto, is_input: bool) -> ITensor:
            dims = tuple(
                d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim
            )
            return ITensor(value.name, dims, _FROM_ONNX[value.type.tensor_type.elem_type], is_input)

        self.network._inputs = [tensor(v, True) for v in graph.input if v.name not in initializers]
        self.network._outputs = [tensor(v, False) for v in graph.output]
        self.network._layers = layers
        self.network.onnx_bytes = proto.SerializeToString()
        return True
