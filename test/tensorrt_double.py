"""THE ONE SANCTIONED TEST DOUBLE of this project: a strict stand-in for the TensorRT 10 Python API.

Neither TensorRT nor a GPU exists on the development machines, so the TensorRT backend is tested against
this module, injected as `sys.modules["tensorrt"]`. It is strict on purpose:
- it implements only the documented TensorRT 10 attributes the backend is allowed to use (objects have
  __slots__, so setting an unknown attribute raises AttributeError as pybind11 objects do);
- every API removed since TensorRT 8 (execute_async_v2, bindings, num_bindings, get_binding_*,
  max_batch_size, max_workspace_size, build_engine, ...) raises AttributeError naming the removal;
- it records what the code under test did (builder configuration, runtime.DLA_core at deserialisation,
  set_tensor_address calls, the stream given to execute_async_v3) for the tests to assert;
- execution is real: execute_async_v3 reads the inputs from the addresses it was given, runs the ONNX
  with onnxruntime and writes the outputs to the output addresses.

`HostCuda` is the matching stand-in for polygraphy.cuda (Stream, DeviceArray) backed by host memory:
part of the same sanctioned double, because TensorRT execution needs device memory that does not
exist here. `make_tensorrt(version="11.4.1")` gives a TensorRT 11 flavour (strongly typed only, no INT8
calibrators or FP16/INT8 builder flags).
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import itertools
import json
import types
from typing import Any

import numpy as np
import onnx
import onnxruntime

REMOVED_SINCE_TRT8 = {
    "execute", "execute_async", "execute_async_v2", "bindings", "num_bindings", "get_binding_index",
    "get_binding_name", "get_binding_shape", "get_binding_dtype", "get_binding_format", "binding_is_input",
    "get_binding_vectorized_dim", "set_binding_shape", "get_profile_shape", "max_batch_size",
    "max_workspace_size", "build_engine", "build_cuda_engine", "min_timing_iterations",
    "avg_timing_iterations", "has_implicit_batch_dimension", "set_optimization_profile",
}

# Layer types the double lets DLA run (a subset of TensorRT 10's DLA support; MatMul, Softmax... are not).
DLA_OPS = {"Conv", "ConvTranspose", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Add", "Sub", "Mul", "Max", "Min",
           "MaxPool", "AveragePool", "Concat", "BatchNormalization", "Clip"}


class _Strict:
    """Unknown attributes raise; removed TensorRT 8 APIs raise with the reason."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name in REMOVED_SINCE_TRT8:
            raise AttributeError(f"{type(self).__name__}.{name} was removed before TensorRT 10 (double)")
        raise AttributeError(f"{type(self).__name__} has no attribute '{name}' in the TensorRT 10 API "
                             "(double)")


class _StrictModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in REMOVED_SINCE_TRT8:
            raise AttributeError(f"tensorrt.{name} was removed before TensorRT 10 (double)")
        raise AttributeError(f"module 'tensorrt' (double {self.__version__}) has no attribute '{name}'")


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}
_FROM_ONNX = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF,
              onnx.TensorProto.INT8: DataType.INT8, onnx.TensorProto.INT32: DataType.INT32,
              onnx.TensorProto.BOOL: DataType.BOOL, onnx.TensorProto.UINT8: DataType.UINT8,
              onnx.TensorProto.INT64: DataType.INT64}


def nptype(dtype: DataType) -> type:
    return _NP[DataType(dtype)]


class TensorFormat(enum.IntEnum):
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    DHWC8 = 6
    CDHW32 = 7
    HWC = 8
    DLA_LINEAR = 9
    DLA_HWC4 = 10
    HWC16 = 11
    DHWC = 12


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    DEBUG = 2
    CHECK_PRECISION = 3
    GPU_FALLBACK = 4
    REFIT = 5
    DISABLE_TIMING_CACHE = 6
    TF32 = 7
    SPARSE_WEIGHTS = 8
    DIRECT_IO = 11
    REJECT_EMPTY_ALGORITHMS = 12


class BuilderFlag11(enum.IntEnum):
    """TensorRT 11: the precision flags are gone (strongly typed networks only)."""

    DEBUG = 2
    GPU_FALLBACK = 4
    REFIT = 5
    DISABLE_TIMING_CACHE = 6
    DIRECT_IO = 11


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerInformationFormat(enum.IntEnum):
    ONELINE = 0
    JSON = 1


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0  # deprecated and ignored in TensorRT 10
    STRONGLY_TYPED = 1


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class Logger(_Strict):
    __slots__ = ("min_severity", "messages")
    Severity = _Severity
    INTERNAL_ERROR = _Severity.INTERNAL_ERROR
    ERROR = _Severity.ERROR
    WARNING = _Severity.WARNING
    INFO = _Severity.INFO
    VERBOSE = _Severity.VERBOSE

    def __init__(self, min_severity: _Severity = _Severity.WARNING) -> None:
        self.min_severity = min_severity
        self.messages: list[str] = []

    def log(self, severity: _Severity, msg: str) -> None:
        if severity <= self.min_severity:
            self.messages.append(msg)


class ITensor(_Strict):
    __slots__ = ("name", "shape", "dtype", "allowed_formats", "is_network_input", "is_network_output")

    def __init__(self, name: str, shape: tuple[int, ...], dtype: DataType, is_input: bool) -> None:
        self.name, self.shape, self.dtype = name, shape, dtype
        self.allowed_formats = 1 << int(TensorFormat.LINEAR)
        self.is_network_input, self.is_network_output = is_input, not is_input


class ILayer(_Strict):
    __slots__ = ("name", "type", "precision")

    def __init__(self, name: str, op_type: str) -> None:
        self.name, self.type, self.precision = name, op_type, DataType.FLOAT


class INetworkDefinition(_Strict):
    __slots__ = ("flags", "_inputs", "_outputs", "_layers", "onnx_bytes")

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._layers: list[ILayer] = []
        self.onnx_bytes = b""

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]


class ParserError(_Strict):
    __slots__ = ("_desc",)

    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:
        return self._desc


class OnnxParser(_Strict):
    __slots__ = ("network", "logger", "_errors")

    def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
        self.network, self.logger, self._errors = network, logger, []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def parse(self, model: bytes, path: str | None = None) -> bool:
        try:
            proto = onnx.load_from_string(bytes(model))
            onnx.checker.check_model(proto)
        except Exception as exc:
            self._errors.append(ParserError(f"ModelImporter: failed to parse ONNX: {exc}"))
            return False
        graph = proto.graph
        initializers = {init.name for init in graph.initializer}

        def tensor(value: onnx.ValueInfoProto, is_input: bool) -> ITensor:
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1
                         for d in value.type.tensor_type.shape.dim)
            return ITensor(value.name, dims, _FROM_ONNX[value.type.tensor_type.elem_type], is_input)

        self.network._inputs = [tensor(v, True) for v in graph.input if v.name not in initializers]
        self.network._outputs = [tensor(v, False) for v in graph.output]
        self.network._layers = [ILayer(node.name or f"{node.op_type}_{index}", node.op_type)
                                for index, node in enumerate(graph.node)]
        self.network.onnx_bytes = bytes(model)
        return True


class IInt8Calibrator:
    """Base of user calibrators: subclasses must call the base __init__ (pybind11 requirement)."""

    def __init__(self) -> None:
        self._base_initialized = True


class IInt8EntropyCalibrator2(IInt8Calibrator):
    pass


class IBuilderConfig(_Strict):
    __slots__ = ("default_device_type", "DLA_core", "int8_calibrator", "profiling_verbosity", "_flags",
                 "_pools", "_device_types", "_module")

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.int8_calibrator = None
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self._flags: set[int] = set()
        self._pools: dict[MemoryPoolType, int] = {}
        self._device_types: dict[str, DeviceType] = {}

    def set_flag(self, flag: Any) -> None:
        self._check_flag(flag)
        self._flags.add(int(flag))

    def clear_flag(self, flag: Any) -> None:
        self._check_flag(flag)
        self._flags.discard(int(flag))

    def get_flag(self, flag: Any) -> bool:
        self._check_flag(flag)
        return int(flag) in self._flags

    def _check_flag(self, flag: Any) -> None:
        if not isinstance(flag, self._module.BuilderFlag):
            raise TypeError(f"set_flag expects tensorrt.BuilderFlag, got {flag!r}")

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        pool = MemoryPoolType(pool)
        if pool != MemoryPoolType.WORKSPACE and (pool_size < 4096 or pool_size & (pool_size - 1)):
            raise ValueError(f"{pool.name} pool size must be a power of two of at least 4 KiB, "
                             f"got {pool_size}")
        self._pools[pool] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        default = 1 << 20 if pool == MemoryPoolType.DLA_MANAGED_SRAM else 0
        return self._pools.get(MemoryPoolType(pool), default)

    def can_run_on_DLA(self, layer: ILayer) -> bool:
        return layer.type in DLA_OPS

    def set_device_type(self, layer: ILayer, device_type: DeviceType) -> None:
        self._device_types[layer.name] = DeviceType(device_type)

    def get_device_type(self, layer: ILayer) -> DeviceType:
        return self._device_types.get(layer.name, self.default_device_type)


class IHostMemory(bytes):
    """A serialized plan (bytes-like, as the real IHostMemory supports the buffer protocol)."""


PLAN_MAGIC = b"TRT-DOUBLE-PLAN\n"


class Builder(_Strict):
    __slots__ = ("logger", "_module")

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self._module = _module_of(self)

    @property
    def num_DLA_cores(self) -> int:
        return self._module.double_state["num_dla_cores"]

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        self._module.double_state["network_flags"].append(int(flags))
        return INetworkDefinition(int(flags))

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self._module)

    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> IHostMemory | None:
        state = self._module.double_state
        flags = {self._module.BuilderFlag(flag).name for flag in config._flags}
        record = {
            "default_device_type": config.default_device_type.name,
            "DLA_core": config.DLA_core,
            "flags": sorted(flags),
            "pools": {pool.name: size for pool, size in config._pools.items()},
            "profiling_verbosity": ProfilingVerbosity(config.profiling_verbosity).name,
            "network_flags": network.flags,
            "input_formats": {t.name: (t.dtype.name, t.allowed_formats) for t in network._inputs},
            "output_formats": {t.name: (t.dtype.name, t.allowed_formats) for t in network._outputs},
            "calibration": None,
        }
        state["builds"].append(record)
        on_dla = config.default_device_type == DeviceType.DLA
        if on_dla:
            if not 0 <= config.DLA_core < state["num_dla_cores"]:
                self.logger.log(Logger.ERROR, f"DLA core {config.DLA_core} does not exist")
                return None
            if not flags & {"FP16", "INT8"}:
                self.logger.log(Logger.ERROR, "DLA needs FP16 or INT8 precision")
                return None
            unsupported = [layer for layer in network._layers if not config.can_run_on_DLA(layer)]
            if "GPU_FALLBACK" not in flags and unsupported:
                self.logger.log(Logger.ERROR, "a layer cannot run on DLA and GPU fallback is off")
                return None
        if "INT8" in flags:
            calibrator = config.int8_calibrator
            initialised = getattr(calibrator, "_base_initialized", False)
            if not isinstance(calibrator, IInt8EntropyCalibrator2) or not initialised:
                self.logger.log(Logger.ERROR, "INT8 without an initialised IInt8EntropyCalibrator2")
                return None
            record["calibration"] = _calibrate(calibrator, network, self._module.__version__)
        layers = [{"name": layer.name, "type": layer.type,
                   "dla": on_dla and config.get_device_type(layer) == DeviceType.DLA
                   and config.can_run_on_DLA(layer)}
                  for layer in network._layers]
        plan = {
            "onnx": network.onnx_bytes.hex(),
            "built_for_dla_core": config.DLA_core if on_dla else None,
            "detailed": config.profiling_verbosity == ProfilingVerbosity.DETAILED,
            "layers": layers,
            "inputs": [[t.name, list(t.shape), t.dtype.name, _format_of(t)] for t in network._inputs],
            "outputs": [[t.name, list(t.shape), t.dtype.name, _format_of(t)] for t in network._outputs],
        }
        return IHostMemory(PLAN_MAGIC + json.dumps(plan).encode())


def _format_of(tensor: ITensor) -> str:
    for fmt in TensorFormat:
        if tensor.allowed_formats == 1 << int(fmt):
            return fmt.name
    return TensorFormat.LINEAR.name


def _calibrate(calibrator: Any, network: INetworkDefinition, version: str) -> dict[str, Any]:
    """What TensorRT does with an entropy calibrator: use its cache, or pull batches and write a cache."""
    cache = calibrator.read_calibration_cache()
    if cache:
        header = bytes(cache).split(b"\n", 1)[0]
        if not header.startswith(b"TRT-") or not header.endswith(b"EntropyCalibration2"):
            raise RuntimeError(f"calibration cache header {header!r} is not an EntropyCalibration2 cache")
        return {"source": "cache", "batches": 0}
    if calibrator.get_batch_size() < 1:
        raise RuntimeError("calibrator batch size must be >= 1")
    names = [tensor.name for tensor in network._inputs]
    batches = 0
    peak = dict.fromkeys(names, 0.0)
    while True:
        pointers = calibrator.get_batch(names)
        if pointers is None:
            break
        if len(pointers) != len(names):
            raise RuntimeError(f"get_batch returned {len(pointers)} pointers for {len(names)} inputs")
        for tensor, pointer in zip(network._inputs, pointers, strict=True):
            numpy_type = np.dtype(nptype(tensor.dtype))
            raw = ctypes.string_at(int(pointer), int(np.prod(tensor.shape)) * numpy_type.itemsize)
            data = np.frombuffer(raw, dtype=numpy_type)
            peak[tensor.name] = max(peak[tensor.name], float(np.abs(data).max(initial=0.0)))
        batches += 1
    if not batches:
        raise RuntimeError("INT8 calibration without a cache needs at least one batch")
    major, minor, patch = (version.split(".") + ["0", "0"])[:3]
    text = f"TRT-{int(major)}{int(minor):02d}{int(patch):02d}-EntropyCalibration2\n"
    for name, value in peak.items():
        text += f"{name}: {np.float32(value / 127.0).view(np.uint32):08x}\n"
    calibrator.write_calibration_cache(memoryview(text.encode()))
    return {"source": "batches", "batches": batches}


class Runtime(_Strict):
    __slots__ = ("logger", "DLA_core", "_module")

    def __init__(self, logger: Logger) -> None:
        self.logger = logger
        self.DLA_core = -1
        self._module = _module_of(self)

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        data = bytes(serialized_engine)
        self._module.double_state["deserialized_on_dla_core"].append(self.DLA_core)
        if not data.startswith(PLAN_MAGIC):
            self.logger.log(Logger.ERROR, "deserialization failed: not a plan")
            return None
        try:
            plan = json.loads(data[len(PLAN_MAGIC):])
        except ValueError:
            self.logger.log(Logger.ERROR, "deserialization failed: corrupt plan")
            return None
        if plan["built_for_dla_core"] is not None and self.DLA_core < 0:
            self.logger.log(Logger.ERROR, "a DLA plan needs runtime.DLA_core set before deserialisation")
            return None
        return ICudaEngine(plan, self.DLA_core, self._module)


class ICudaEngine(_Strict):
    __slots__ = ("_plan", "dla_core", "_module", "_io", "_session")

    def __init__(self, plan: dict[str, Any], dla_core: int, module: types.ModuleType) -> None:
        self._plan, self.dla_core, self._module = plan, dla_core, module
        self._io = {name: (tuple(shape), DataType[dtype], TensorFormat[fmt], mode)
                    for mode, key in ((TensorIOMode.INPUT, "inputs"), (TensorIOMode.OUTPUT, "outputs"))
                    for name, shape, dtype, fmt in plan[key]}
        self._session = onnxruntime.InferenceSession(bytes.fromhex(plan["onnx"]),
                                                     providers=["CPUExecutionProvider"])

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    @property
    def num_layers(self) -> int:
        return len(self._plan["layers"])

    def get_tensor_name(self, index: int) -> str:
        return list(self._io)[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._io[name][3] if name in self._io else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._io[name][0]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._io[name][1]

    def get_tensor_format(self, name: str) -> TensorFormat:
        return self._io[name][2]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self)


class IExecutionContext(_Strict):
    __slots__ = ("engine", "_addresses", "_module")

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._addresses: dict[str, int] = {}
        self._module = engine._module

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._module.double_state["tensor_addresses"].append((name, int(memory)))
        if name not in self.engine._io or not memory:
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        is_input = self.engine.get_tensor_mode(name) == TensorIOMode.INPUT
        return is_input and tuple(shape) == self.engine._io[name][0]

    def execute_async_v3(self, stream_handle: int) -> bool:
        self._module.double_state["executions"].append(int(stream_handle))
        if set(self._addresses) != set(self.engine._io):
            return False  # TensorRT refuses to run with an I/O tensor lacking an address
        feeds = {}
        for name, (shape, dtype, _, mode) in self.engine._io.items():
            if mode == TensorIOMode.INPUT:
                numpy_type = np.dtype(nptype(dtype))
                raw = ctypes.string_at(self._addresses[name], int(np.prod(shape)) * numpy_type.itemsize)
                feeds[name] = np.frombuffer(raw, dtype=numpy_type).reshape(shape)
        outputs = self.engine._session.run(None, feeds)
        for arg, value in zip(self.engine._session.get_outputs(), outputs, strict=True):
            value = np.ascontiguousarray(value, dtype=nptype(self.engine._io[arg.name][1]))
            ctypes.memmove(self._addresses[arg.name], value.ctypes.data, value.nbytes)
        return True

    def execute_v2(self, bindings: list[int]) -> bool:  # synchronous, still in TensorRT 10
        for (name, _), pointer in zip(self.engine._io.items(), bindings, strict=True):
            self._addresses[name] = int(pointer)
        return self.execute_async_v3(-1)


class EngineInspector(_Strict):
    __slots__ = ("engine", "execution_context")

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine, self.execution_context = engine, None

    def get_engine_information(self, format: LayerInformationFormat) -> str:
        names, group = [], []
        for layer in self.engine._plan["layers"] + [None]:
            if layer is not None and layer["dla"]:
                group.append(layer["name"])
                continue
            if group:
                foreign = f"{{ForeignNode[{group[0]}...{group[-1]}]}}"
                names += [f"Reformatting CopyNode for Input Tensor 0 to {foreign}", foreign]
                group = []
            if layer is not None:
                names.append(layer["name"])
        if self.engine._plan["detailed"]:
            layers: list[Any] = [{"Name": name, "LayerType": "Foreign" if name.startswith("{") else "Kernel"}
                                 for name in names]
        else:
            layers = names
        return json.dumps({"Layers": layers, "Bindings": list(self.engine._io)})


def _module_of(obj: Any) -> types.ModuleType:
    return _CURRENT["module"]


_CURRENT: dict[str, Any] = {}


def make_tensorrt(version: str = "10.3.0", num_dla_cores: int = 2) -> types.ModuleType:
    """A fresh strict `tensorrt` module; its `double_state` dict records what the code did."""
    module = _StrictModule("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = version
    module.double_state = {"num_dla_cores": num_dla_cores, "builds": [], "network_flags": [],
                           "deserialized_on_dla_core": [], "tensor_addresses": [], "executions": []}
    exported = {
        "Logger": Logger, "Builder": Builder, "Runtime": Runtime, "OnnxParser": OnnxParser,
        "DataType": DataType, "TensorFormat": TensorFormat, "DeviceType": DeviceType,
        "MemoryPoolType": MemoryPoolType, "ProfilingVerbosity": ProfilingVerbosity,
        "LayerInformationFormat": LayerInformationFormat, "TensorIOMode": TensorIOMode,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag, "nptype": nptype,
        "ICudaEngine": ICudaEngine, "IExecutionContext": IExecutionContext,
        "EngineInspector": EngineInspector,
        "IBuilderConfig": IBuilderConfig, "INetworkDefinition": INetworkDefinition,
    }
    if int(version.split(".")[0]) >= 11:
        exported["BuilderFlag"] = BuilderFlag11
    else:
        exported.update(BuilderFlag=BuilderFlag, IInt8Calibrator=IInt8Calibrator,
                        IInt8EntropyCalibrator2=IInt8EntropyCalibrator2)
    for name, value in exported.items():
        setattr(module, name, value)
    _CURRENT["module"] = module
    return module


class HostCuda:
    """Stand-in for polygraphy.cuda backed by host memory (part of the sanctioned double, see above)."""

    _handles = itertools.count(0x7000)

    def __init__(self) -> None:
        self.streams: list[HostCuda.Stream] = []
        self.copies: list[tuple[str, int]] = []  # (direction, stream ptr)
        self.freed = 0
        cuda = self

        class Stream:
            def __init__(self) -> None:
                self.ptr = next(HostCuda._handles)
                self.synchronized = 0
                cuda.streams.append(self)

            def synchronize(self) -> None:
                self.synchronized += 1

            def free(self) -> None:
                cuda.freed += 1

        class DeviceArray:
            def __init__(self, shape: tuple[int, ...] = (), dtype: Any = np.float32) -> None:
                self.dtype = np.dtype(dtype)
                self._memory = np.zeros(1, np.uint8)
                self.resize(shape)

            @property
            def ptr(self) -> int:
                return int(self._memory.ctypes.data)

            def resize(self, shape: tuple[int, ...]) -> DeviceArray:
                self.shape = tuple(shape)
                nbytes = max(1, int(np.prod(self.shape)) * self.dtype.itemsize)
                if nbytes > self._memory.nbytes:
                    self._memory = np.zeros(nbytes, np.uint8)
                return self

            def copy_from(self, host: np.ndarray, stream: Any = None) -> DeviceArray:
                assert host.flags.c_contiguous and host.dtype == self.dtype
                assert host.nbytes <= self._memory.nbytes
                cuda.copies.append(("to_device", stream.ptr if stream else 0))
                ctypes.memmove(self.ptr, host.ctypes.data, host.nbytes)
                return self

            def copy_to(self, host: np.ndarray, stream: Any = None) -> np.ndarray:
                assert host.flags.c_contiguous and host.dtype == self.dtype
                cuda.copies.append(("to_host", stream.ptr if stream else 0))
                ctypes.memmove(host.ctypes.data, self.ptr, host.nbytes)
                return host

            def free(self) -> None:
                cuda.freed += 1

        self.Stream = Stream
        self.DeviceArray = DeviceArray
