"""Part of THE ONE SANCTIONED TEST DOUBLE (see tensorrt_double.py): the enums and the strictness base.

Every value below follows TensorRT's own headers; the line each one follows is cited next to it
(NVIDIA/TensorRT, include/NvInfer.h and NvInferRuntime*.h of the 10.x line; the BuilderFlag and LayerType
values were read from the stored v10.7 header, which kept every 10.3 value and only marked kDIRECT_IO
deprecated). Names are the Python bindings' (the `k` prefix dropped, as pybind11 exports them).
"""

from __future__ import annotations

import enum
import types
from typing import Any

import numpy as np

REMOVED_SINCE_TRT8 = {
    "execute",
    "execute_async",
    "execute_async_v2",
    "bindings",
    "num_bindings",
    "get_binding_index",
    "get_binding_name",
    "get_binding_shape",
    "get_binding_dtype",
    "get_binding_format",
    "binding_is_input",
    "get_binding_vectorized_dim",
    "set_binding_shape",
    "get_profile_shape",
    "max_batch_size",
    "max_workspace_size",
    "build_engine",
    "build_cuda_engine",
    "min_timing_iterations",
    "avg_timing_iterations",
    "has_implicit_batch_dimension",
    "set_optimization_profile",
}


class Strict:
    """Unknown attributes raise (pybind11 objects have no __dict__); removed TensorRT 8 APIs say so."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name in REMOVED_SINCE_TRT8:
            raise AttributeError(f"{type(self).__name__}.{name} was removed before TensorRT 10 (double)")
        raise AttributeError(
            f"{type(self).__name__} has no attribute '{name}' in the TensorRT 10 API (double)"
        )


class DataType(enum.IntEnum):
    """NvInferRuntimeBase.h `enum class DataType`: kFLOAT = 0 ... kUINT8 = 5, kFP8 = 6, kBF16 = 7,
    kINT64 = 8, kINT4 = 9 (10.x)."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


_NUMPY = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
    DataType.BOOL: np.bool_,
    DataType.UINT8: np.uint8,
    DataType.INT64: np.int64,
}


def nptype(dtype: DataType) -> type:
    """tensorrt.nptype: FP8, BF16 and INT4 have no numpy type, the binding raises TypeError for them."""
    try:
        return _NUMPY[DataType(dtype)]
    except KeyError:
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.") from None


class TensorFormat(enum.IntEnum):
    """NvInferRuntime.h `enum class TensorFormat`: kLINEAR = 0 ... kDLA_LINEAR = 9, kDLA_HWC4 = 10."""

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
    GPU = 0  # NvInfer.h enum class DeviceType: kGPU = 0, kDLA = 1
    DLA = 1


class EngineCapability(enum.IntEnum):
    """NvInferRuntime.h (10.x) `enum class EngineCapability`: kSTANDARD = 0, kSAFETY = 1,
    kDLA_STANDALONE = 2."""

    STANDARD = 0
    SAFETY = 1
    DLA_STANDALONE = 2


class BuilderFlag(enum.IntEnum):
    """NvInfer.h `enum class BuilderFlag` (10.x): kFP16 = 0, kINT8 = 1, kDEBUG = 2, kGPU_FALLBACK = 3,
    kREFIT = 4, kDISABLE_TIMING_CACHE = 5, kTF32 = 6, kSPARSE_WEIGHTS = 7, kSAFETY_SCOPE = 8,
    kOBEY_PRECISION_CONSTRAINTS = 9, kPREFER_PRECISION_CONSTRAINTS = 10, kDIRECT_IO = 11 ("Deprecated in
    TensorRT 10.7"), kREJECT_EMPTY_ALGORITHMS = 12, ... kWEIGHT_STREAMING = 21.
    There is no CHECK_PRECISION."""

    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    DISABLE_TIMING_CACHE = 5
    TF32 = 6
    SPARSE_WEIGHTS = 7
    SAFETY_SCOPE = 8
    OBEY_PRECISION_CONSTRAINTS = 9
    PREFER_PRECISION_CONSTRAINTS = 10
    DIRECT_IO = 11
    REJECT_EMPTY_ALGORITHMS = 12
    VERSION_COMPATIBLE = 13
    EXCLUDE_LEAN_RUNTIME = 14
    FP8 = 15
    ERROR_ON_TIMING_CACHE_MISS = 16
    BF16 = 17
    DISABLE_COMPILATION_CACHE = 18
    STRIP_PLAN = 19
    REFIT_IDENTICAL = 20
    WEIGHT_STREAMING = 21


class BuilderFlag11(enum.IntEnum):
    """TensorRT 11: kFP16, kINT8, kOBEY_/kPREFER_PRECISION_CONSTRAINTS "were removed in TensorRT 11.0"
    (docs 11.4.1, "Strongly Typed Networks for DLA"); kDIRECT_IO stays (11.x "DLA Standalone Mode"
    sets it)."""

    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    DISABLE_TIMING_CACHE = 5
    TF32 = 6
    SPARSE_WEIGHTS = 7
    DIRECT_IO = 11


class LayerType(enum.IntEnum):
    """NvInfer.h `enum class LayerType` (the values the parser's layers report through ILayer.type)."""

    CONVOLUTION = 0
    CAST = 1
    ACTIVATION = 2
    POOLING = 3
    LRN = 4
    SCALE = 5
    SOFTMAX = 6
    DECONVOLUTION = 7
    CONCATENATION = 8
    ELEMENTWISE = 9
    PLUGIN = 10
    UNARY = 11
    PADDING = 12
    SHUFFLE = 13
    REDUCE = 14
    TOPK = 15
    GATHER = 16
    MATRIX_MULTIPLY = 17
    RAGGED_SOFTMAX = 18
    CONSTANT = 19
    IDENTITY = 20
    PLUGIN_V2 = 21
    SLICE = 22
    SHAPE = 23
    PARAMETRIC_RELU = 24
    RESIZE = 25
    QUANTIZE = 32
    DEQUANTIZE = 33
    NORMALIZATION = 45


class MemoryPoolType(enum.IntEnum):
    """NvInfer.h `enum class MemoryPoolType`: kWORKSPACE = 0, kDLA_MANAGED_SRAM = 1 ("at least 4 KiB and a
    power of 2 ... defaults to 1 MiB"), kDLA_LOCAL_DRAM = 2, kDLA_GLOBAL_DRAM = 3, kTACTIC_DRAM = 4."""

    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0  # NvInferRuntime.h: kLAYER_NAMES_ONLY = 0 (the default), kNONE = 1, kDETAILED = 2
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


class CalibrationAlgoType(enum.IntEnum):
    """pyInt8.cpp: LEGACY_CALIBRATION, ENTROPY_CALIBRATION, ENTROPY_CALIBRATION_2, MINMAX_CALIBRATION."""

    LEGACY_CALIBRATION = 0
    ENTROPY_CALIBRATION = 1
    ENTROPY_CALIBRATION_2 = 2
    MINMAX_CALIBRATION = 3


class Severity(enum.IntEnum):
    """ILogger::Severity: kINTERNAL_ERROR = 0, kERROR = 1, kWARNING = 2, kINFO = 3, kVERBOSE = 4."""

    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


_CURRENT: dict[str, Any] = {}  # the module the last make_tensorrt() made: objects find their state here


def current_module() -> types.ModuleType:
    return _CURRENT["module"]


def state() -> dict[str, Any]:
    return _CURRENT["module"].double_state
