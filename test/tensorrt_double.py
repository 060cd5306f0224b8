"""THE ONE SANCTIONED TEST DOUBLE of this project: a strict stand-in for the TensorRT 10.3 Python API.

Neither TensorRT nor a GPU exists on the development machines, so the TensorRT backend is tested against
this module, injected as `sys.modules["tensorrt"]` (the `trt` fixture in conftest.py). It follows TensorRT's
own headers and Python bindings, cited where each behaviour is implemented, and it is strict on purpose:
- only documented TensorRT 10 attributes exist (objects have __slots__; unknown attributes raise, as
  pybind11 objects do), and every API removed since TensorRT 8 raises AttributeError naming the removal;
- enum values are the headers' (tensorrt_double_types.py), e.g. BuilderFlag.GPU_FALLBACK = 3, REFIT = 4;
- the ONNX parser adds the layers the real one adds (Constant layers for initializers that ElementWise,
  Concatenation, Quantize/Dequantize layers take as tensors, Shuffle layers to broadcast them), so network
  layers are not ONNX nodes; `parse_from_file` reads external weights beside the model, `parse` of bytes
  without `path` cannot;
- the builder logs like TensorRT: per-layer "Unsupported on DLA. Switching this layer's device type to
  GPU." warnings and the "Layers Running on DLA/GPU" lists ([DlaLayer]/[GpuLayer] lines, at VERBOSE);
- INT8 calibrators are called the way the binding calls them (python/src/infer/pyInt8.cpp): an exception
  in get_batch/read/write_calibration_cache is printed to stderr ("[ERROR] Exception caught in
  get_batch(): ...") and swallowed, get_batch then counts as "no more data"; Q/DQ networks are explicitly
  quantized (a calibrator is ignored with TensorRT's warning);
- a DLA plan deserialised with `runtime.DLA_core` left at -1 loads on core 0 (NvInferRuntime.h: "Defaults to
  -1"; microsoft/onnxruntime#26680: engines deserialised so ran on DLA core 0);
- the engine inspector answers in the shape of the real JSON (tensorrt_double_build.py): DETAILED gives
  layer dicts (Name, LayerType, Inputs, Outputs, ...), GPU subgraphs compiled by Myelin are
  `{ForeignNode[...]}` with "LayerType": "Myelin", DLA subgraphs come with their `... to nvm`, `... from
  nvm`, `... copy finish` I/O nodes, GPU consumers of DLA outputs with "Reformat" layers;
- it records what the code did (builder configuration, runtime.DLA_core at deserialisation,
  set_tensor_address calls, the execute_async_v3 stream) and executes for real: the plan's ONNX runs in
  onnxruntime from the addresses it was given.

Its parts: tensorrt_double_types.py (enums), tensorrt_double_network.py (loggers, network, parser),
tensorrt_double_build.py (builder, calibration, placement and the inspector's JSON), tensorrt_double_engine.py
(plan, engine, execution context, inspector) and tensorrt_double_cuda.py (`HostCuda`, the matching stand-in
for polygraphy.cuda).
`make_tensorrt(version="11.4.1")` gives a TensorRT 11 flavour: strongly typed only, no FP16/INT8 flags, no
calibrators, Q/DQ layers allowed on DLA.
"""

from __future__ import annotations

import importlib.machinery
import types
from typing import Any

import tensorrt_double_build as build_part
import tensorrt_double_engine as engine_part
from tensorrt_double_network import (
    ILayer,
    ILogger,
    INetworkDefinition,
    Logger,
    OnnxParser,
    checked_logger,
)
from tensorrt_double_types import (
    _CURRENT,
    REMOVED_SINCE_TRT8,
    BuilderFlag,
    BuilderFlag11,
    CalibrationAlgoType,
    DataType,
    DeviceType,
    EngineCapability,
    LayerInformationFormat,
    LayerType,
    MemoryPoolType,
    NetworkDefinitionCreationFlag,
    ProfilingVerbosity,
    Strict,
    TensorFormat,
    TensorIOMode,
    current_module,
    nptype,
    state,
)


class _Module(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in REMOVED_SINCE_TRT8:
            raise AttributeError(f"tensorrt.{name} was removed before TensorRT 10 (double)")
        raise AttributeError(f"module 'tensorrt' (double {self.__version__}) has no attribute '{name}'")


# -- calibrators (pyInt8.cpp) ----------------------------------------------------------------------------


class IInt8Calibrator:
    """Base of user calibrators: subclasses must call the base __init__ (pybind11 requirement)."""

    algorithm = CalibrationAlgoType.LEGACY_CALIBRATION

    def __init__(self) -> None:
        self._double_initialised = True

    def get_algorithm(self) -> CalibrationAlgoType:
        return self.algorithm


class IInt8EntropyCalibrator2(IInt8Calibrator):
    algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION_2


class IInt8MinMaxCalibrator(IInt8Calibrator):
    algorithm = CalibrationAlgoType.MINMAX_CALIBRATION


# -- builder ----------------------------------------------------------------------------------------------


class IBuilderConfig(Strict):
    __slots__ = (
        "default_device_type",
        "DLA_core",
        "int8_calibrator",
        "profiling_verbosity",
        "engine_capability",
        "_flags",
        "_pools",
        "_device_types",
    )

    def __init__(self) -> None:
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.int8_calibrator = None
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.engine_capability = EngineCapability.STANDARD
        self._flags: set[int] = set()
        self._pools: dict[MemoryPoolType, int] = {}
        self._device_types: dict[str, DeviceType] = {}

    def _check_flag(self, flag: Any) -> int:
        if not isinstance(flag, current_module().BuilderFlag):
            raise TypeError(f"set_flag expects tensorrt.BuilderFlag, got {flag!r}")
        return int(flag)

    def set_flag(self, flag: Any) -> None:
        self._flags.add(self._check_flag(flag))

    def clear_flag(self, flag: Any) -> None:
        self._flags.discard(self._check_flag(flag))

    def get_flag(self, flag: Any) -> bool:
        return self._check_flag(flag) in self._flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        pool = MemoryPoolType(pool)
        if pool in (
            MemoryPoolType.DLA_MANAGED_SRAM,
            MemoryPoolType.DLA_LOCAL_DRAM,
            MemoryPoolType.DLA_GLOBAL_DRAM,
        ):
            if pool_size < 4096 or pool_size & (pool_size - 1):
                raise ValueError(f"{pool.name} pool size must be a power of two of at least 4 KiB")
        self._pools[pool] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        default = {
            MemoryPoolType.DLA_MANAGED_SRAM: 1 << 20,
            MemoryPoolType.DLA_LOCAL_DRAM: 1 << 30,
            MemoryPoolType.DLA_GLOBAL_DRAM: 1 << 29,
        }.get(MemoryPoolType(pool), 0)
        return self._pools.get(MemoryPoolType(pool), default)

    def can_run_on_DLA(self, layer: ILayer) -> bool:
        return build_part.dla_capable(layer, current_module().__version__)

    def set_device_type(self, layer: ILayer, device_type: DeviceType) -> None:
        self._device_types[layer.name] = DeviceType(device_type)

    def get_device_type(self, layer: ILayer) -> DeviceType:
        return self._device_types.get(layer.name, self.default_device_type)


class Builder(Strict):
    __slots__ = ("logger",)

    def __init__(self, logger: ILogger) -> None:
        self.logger = checked_logger(logger)
        state()["loggers"].append(logger)

    @property
    def num_DLA_cores(self) -> int:
        return state()["num_dla_cores"]

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        state()["network_flags"].append(int(flags))
        return INetworkDefinition(int(flags))

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
        return build_part.build(current_module(), self.logger, network, config)


class Runtime(Strict):
    __slots__ = ("logger", "_dla_core")

    def __init__(self, logger: ILogger) -> None:
        self.logger = checked_logger(logger)
        self._dla_core = -1  # NvInferRuntime.h IRuntime::setDLACore: "Defaults to -1."
        state()["loggers"].append(logger)

    @property
    def DLA_core(self) -> int:
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, core: int) -> None:
        if state()["num_dla_cores"] == 0:
            return  # "if getNbDLACores() returns 0, then this function does nothing"
        self._dla_core = int(core)

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> Any:
        return engine_part.deserialize(
            current_module(), self.logger, bytes(serialized_engine), self._dla_core
        )


def make_tensorrt(version: str = "10.3.0", num_dla_cores: int = 2) -> types.ModuleType:
    """A fresh strict `tensorrt` module; its `double_state` dict records what the code did."""
    module = _Module("tensorrt")
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    module.__version__ = version
    module.double_state = {
        "num_dla_cores": num_dla_cores,
        "builds": [],
        "network_flags": [],
        "parsed": [],
        "deserialized_on_dla_core": [],
        "tensor_addresses": [],
        "executions": [],
        "loggers": [],
        "stderr": [],
    }
    exported = {
        "ILogger": ILogger,
        "Logger": Logger,
        "Builder": Builder,
        "Runtime": Runtime,
        "OnnxParser": OnnxParser,
        "DataType": DataType,
        "TensorFormat": TensorFormat,
        "DeviceType": DeviceType,
        "LayerType": LayerType,
        "MemoryPoolType": MemoryPoolType,
        "ProfilingVerbosity": ProfilingVerbosity,
        "LayerInformationFormat": LayerInformationFormat,
        "TensorIOMode": TensorIOMode,
        "NetworkDefinitionCreationFlag": NetworkDefinitionCreationFlag,
        "EngineCapability": EngineCapability,
        "nptype": nptype,
        "IBuilderConfig": IBuilderConfig,
        "INetworkDefinition": INetworkDefinition,
        "ICudaEngine": engine_part.ICudaEngine,
        "IExecutionContext": engine_part.IExecutionContext,
        "EngineInspector": engine_part.EngineInspector,
    }
    if int(version.split(".")[0]) >= 11:
        exported["BuilderFlag"] = BuilderFlag11
    else:
        exported.update(
            BuilderFlag=BuilderFlag,
            CalibrationAlgoType=CalibrationAlgoType,
            IInt8Calibrator=IInt8Calibrator,
            IInt8EntropyCalibrator2=IInt8EntropyCalibrator2,
            IInt8MinMaxCalibrator=IInt8MinMaxCalibrator,
        )
    for name, value in exported.items():
        setattr(module, name, value)
    _CURRENT["module"] = module
    return module


def __getattr__(name: str) -> Any:
    """`tensorrt_double.HostCuda` and `PLAN_MAGIC` keep their old home for the tests."""
    if name == "HostCuda":
        from tensorrt_double_cuda import HostCuda

        return HostCuda
    if name == "PLAN_MAGIC":
        return engine_part.PLAN_MAGIC
    raise AttributeError(name)
