"""Building a TensorRT plan for the GPU or a DLA core, the way each TensorRT line wants it.

Written against TensorRT 10.3 (JetPack 6) and checked against its headers (see docs/runtime.md):
explicit-batch networks, `parser.parse_from_file` (external weights are found beside the model),
`build_serialized_network`, DETAILED profiling verbosity, the shared logger capturing the builder's
placement lists. Precision by TensorRT line and model:

- float model, fp16: FP16 flag (TensorRT 10); strongly typed on 11.4.1+, so export it in float16.
- float model, int8: INT8 + FP16 flags with an IInt8EntropyCalibrator2 (implicit INT8, deprecated since
  10.1); refused on 11.x (quantize it first).
- Q/DQ model on the GPU: explicit quantization, INT8 + FP16 flags, no calibrator (10.x); strongly typed
  (11.x).
- Q/DQ model on DLA: on 10.x translated, its scales become a calibration cache (Orin's DLA takes INT8 only
  that way), `--qdq explicit` builds the Q/DQ layers as they are; strongly typed on 11.4.1+.

TensorRT 11.0-11.3 has no DLA; 11.4.0 has DLA only on Windows on ARM. `GPU_FALLBACK` is set unless the
user asks for pure DLA; `DIRECT_IO` (deprecated in 10.7) exactly when DLA-native I/O formats are requested.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx

from dla_perception.runtime.errors import EngineError
from dla_perception.runtime.plan_cache import sha256_file
from dla_perception.runtime.tensorrt_calibration import (
    make_entropy_calibrator,
    raise_if_failed,
    validate_batches,
)
from dla_perception.runtime.tensorrt_logger import builder_placement, capture, shared_logger
from dla_perception.runtime.tensorrt_qdq import TranslationError, calibration_cache, is_quantized, translate

log = logging.getLogger(__name__)

DEFAULT_DLA_SRAM_BYTES = 1 << 20  # each Orin DLA core has 1 MiB of its own SRAM (NvInfer.h kDLA_MANAGED_SRAM)
QDQ_MODES = ("auto", "explicit", "translate")


@dataclass(frozen=True)
class BuildOptions:
    core: str
    precision: str = "fp16"
    gpu_fallback: bool = True
    calibration_cache: Path | None = None
    dla_sram_bytes: int = DEFAULT_DLA_SRAM_BYTES
    dla_native_io: bool = False
    qdq: str = "auto"  # Q/DQ models on DLA with TensorRT 10: "translate" (auto) or "explicit"

    @property
    def dla_index(self) -> int | None:
        return int(self.core[3:]) if self.core.startswith("dla") else None


def tensorrt_version(trt: ModuleType) -> tuple[int, int, int]:
    parts = (str(getattr(trt, "__version__", "0")).split(".") + ["0", "0"])[:3]
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return 0, 0, 0


def model_facts(onnx_path: Path) -> dict[str, Any]:
    """What decides the build path: Q/DQ nodes, and whether the inputs are typed float16."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    types = [v.type.tensor_type.elem_type for v in model.graph.input if v.name not in initializers]
    return {
        "quantized": is_quantized(model),
        "float16": bool(types) and all(t == onnx.TensorProto.FLOAT16 for t in types),
    }


def build_mode(trt: ModuleType, options: BuildOptions, facts: Mapping[str, Any]) -> str:
    """fp32 | fp16 | implicit-int8 | explicit-int8 | translated-int8 | strongly-typed, or EngineError."""
    version = tensorrt_version(trt)
    text, dla, precision = str(trt.__version__), options.dla_index is not None, options.precision
    if options.qdq not in QDQ_MODES:
        raise EngineError(f"qdq must be one of {QDQ_MODES}, got {options.qdq!r}")
    if version[0] < 10:
        raise EngineError(
            f"TensorRT {text} is too old: dla_perception needs TensorRT 10 (JetPack 6) or newer"
        )
    if dla and (11, 0, 0) <= version < (11, 4, 0):
        raise EngineError(
            f"TensorRT {text} has no DLA (11.0-11.3 dropped it): JetPack 6 ships TensorRT 10.3, and "
            "DLA returns in TensorRT 11.4.1 on AGX Orin with JetPack 7.2.2+"
        )
    if dla and version[:2] == (11, 4) and version < (11, 4, 1):
        raise EngineError(
            f"TensorRT {text} supports DLA only on Windows on ARM; on Jetson AGX Orin use TensorRT "
            "11.4.1+ with JetPack 7.2.2+"
        )
    if facts["quantized"] and precision != "int8":
        raise EngineError(
            f"the model is explicitly quantized (Q/DQ nodes): use precision int8, not {precision}"
        )
    if version[0] >= 11:
        if facts["quantized"] or precision == "fp32" or (precision == "fp16" and facts["float16"]):
            return "strongly-typed"
        fix = (
            "export the ONNX in float16 (e.g. modelopt.onnx.autocast --low_precision_type fp16)"
            if precision == "fp16"
            else "quantize it (dla-perception quantize MODEL.onnx ...)"
        )
        raise EngineError(
            f"TensorRT {text} builds strongly typed networks only: the FP16/INT8 builder flags and "
            f"INT8 calibrators are gone, so precision '{precision}' cannot be requested for a float32 "
            f"model; {fix}"
        )
    if precision != "int8":
        return precision
    if not facts["quantized"]:
        return "implicit-int8"
    if options.qdq == "explicit" or (options.qdq == "auto" and not dla):
        return "explicit-int8"
    return "translated-int8"


def plan_key(onnx_path: Path, options: BuildOptions, trt_version: str, gpu_name: str) -> dict[str, Any]:
    """Everything that makes a plan valid; any change gives a new plan (and the old one is pruned later)."""
    calibration = options.calibration_cache
    return {
        "onnx_sha256": sha256_file(onnx_path),
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "core": options.core,
        "precision": options.precision,
        "calibration_sha256": sha256_file(calibration) if calibration and calibration.is_file() else None,
        "gpu_fallback": options.gpu_fallback,
        "dla_sram_bytes": options.dla_sram_bytes,
        "dla_native_io": options.dla_native_io,
        "qdq": options.qdq,
    }


def _parse(
    trt: ModuleType, network: Any, logger: Any, onnx_path: Path, mode: str, workdir: Path
) -> dict[str, Any] | None:
    """Parse the model (translated first for DLA on TensorRT 10); returns the translation facts."""
    translation = None
    source = Path(onnx_path)
    if mode == "translated-int8":
        try:
            translation = translate(onnx.load(str(onnx_path)))
        except TranslationError as exc:
            raise EngineError(
                f"{onnx_path}: this Q/DQ model cannot be translated for DLA on TensorRT "
                f"{trt.__version__}: {exc}"
            ) from exc
        source = workdir / f"{source.stem}.noqdq.onnx"
        onnx.save(translation.model, str(source))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = "; ".join(str(parser.get_error(index).desc()) for index in range(parser.num_errors))
        raise EngineError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors or 'no detail'}")
    if translation is None:
        return None
    return {"scales": translation.scales, "pairs": translation.pairs, "weights": translation.weights}


def build_plan(
    trt: ModuleType,
    onnx_path: Path,
    options: BuildOptions,
    *,
    calibration_batches: Iterable[Mapping[str, np.ndarray]] | None = None,
    cuda: Any = None,
) -> tuple[bytes, dict[str, Any]]:
    """Build a serialized plan for one core; returns (plan bytes, build facts kept with the cached plan)."""
    mode = build_mode(trt, options, model_facts(Path(onnx_path)))
    logger = shared_logger(trt)
    builder = trt.Builder(logger)
    dla = options.dla_index
    if dla is not None and dla >= int(builder.num_DLA_cores):
        raise EngineError(
            f"{options.core} requested but TensorRT reports {builder.num_DLA_cores} DLA core(s)"
        )
    strongly_typed = tensorrt_version(trt)[0] >= 11
    network = builder.create_network(
        1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    )
    with tempfile.TemporaryDirectory(prefix="dla_perception_build_") as workdir, capture() as lines:
        translation = _parse(trt, network, logger, Path(onnx_path), mode, Path(workdir))
        inputs = [network.get_input(index) for index in range(network.num_inputs)]
        for tensor in inputs:
            if any(int(dim) < 0 for dim in tensor.shape):
                raise EngineError(
                    f"input '{tensor.name}' has dynamic shape {tuple(tensor.shape)}: TensorRT engines "
                    "here need static shapes (DLA requires them); export the ONNX with fixed sizes"
                )
        config = builder.create_builder_config()
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        calibrator = _precision(trt, config, options, mode, inputs, calibration_batches, cuda, translation)
        predicted = None
        if dla is not None:
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = dla
            if options.gpu_fallback:
                config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
            config.set_memory_pool_limit(trt.MemoryPoolType.DLA_MANAGED_SRAM, options.dla_sram_bytes)
            predicted = sum(
                1 for i in range(network.num_layers) if config.can_run_on_DLA(network.get_layer(i))
            )
            if options.dla_native_io:
                config.set_flag(trt.BuilderFlag.DIRECT_IO)  # forbids reformats at the formatted I/O below
                _set_dla_native_io(trt, network, options.precision)
        try:
            plan = builder.build_serialized_network(network, config)
        finally:
            if calibrator is not None:
                calibrator.free()
        if calibrator is not None:
            raise_if_failed(calibrator)
    if plan is None:
        errors = [line[4:] for line in lines if line.startswith(("[E]", "[F]"))][-3:]
        hint = (
            " (GPU fallback is off: a layer DLA cannot run?)"
            if dla is not None and not options.gpu_fallback
            else ""
        )
        raise EngineError(
            f"TensorRT could not build {onnx_path} for {options.core}{hint}: "
            + ("; ".join(errors) or "see the log above")
        )
    info: dict[str, Any] = {
        "tensorrt": str(trt.__version__),
        "mode": mode,
        "predicted_dla_layers": predicted,
        "network_layers": int(network.num_layers),
        "log": list(lines),
        "builder_placement": builder_placement(lines),
    }
    if translation is not None:
        info["qdq_translation"] = {
            "activation_scales": len(translation["scales"]),
            "pairs": translation["pairs"],
            "weights": translation["weights"],
        }
    return bytes(plan), info


def _precision(
    trt: ModuleType,
    config: Any,
    options: BuildOptions,
    mode: str,
    inputs: list[Any],
    batches: Iterable[Mapping[str, np.ndarray]] | None,
    cuda: Any,
    translation: dict[str, Any] | None,
) -> Any:
    """Set the precision flags of `mode`; returns the calibrator when one is used."""
    if mode in ("fp16", "implicit-int8", "explicit-int8", "translated-int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # layers INT8 cannot keep run in FP16, never in FP32 on DLA
    if mode not in ("implicit-int8", "explicit-int8", "translated-int8"):
        return None
    config.set_flag(trt.BuilderFlag.INT8)
    if mode == "explicit-int8":
        return None  # Q/DQ layers carry the scales: no calibrator
    if mode == "translated-int8":
        cache = calibration_cache(translation["scales"], tensorrt_version(trt))
        calibrator = make_entropy_calibrator(trt, cache=cache)
    else:
        log.warning(
            "implicit INT8 (an INT8 calibrator) is deprecated since TensorRT 10.1 and gone in 11.0: "
            "`dla-perception quantize` makes an explicitly quantized (Q/DQ) model instead"
        )
        cache_path = options.calibration_cache
        if (cache_path is None or not cache_path.is_file()) and batches is None:
            raise EngineError(
                f"INT8 needs a calibration cache ({cache_path or 'none given'} not found) or "
                "calibration data, or a Q/DQ model (dla-perception quantize)"
            )
        specs = [(t.name, tuple(int(d) for d in t.shape), np.dtype(trt.nptype(t.dtype))) for t in inputs]
        checked = validate_batches(batches, specs) if batches is not None else None
        calibrator = make_entropy_calibrator(trt, cache_path, checked, cuda)
    config.int8_calibrator = calibrator
    return calibrator


def _set_dla_native_io(trt: ModuleType, network: Any, precision: str) -> None:
    """DLA-native I/O (no GPU reformat around the DLA call): what trtexec's --inputIOFormats does."""
    dtype = trt.DataType.INT8 if precision == "int8" else trt.DataType.HALF
    layout = trt.TensorFormat.CHW32 if precision == "int8" else trt.TensorFormat.CHW16
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        tensor.dtype = dtype
        tensor.allowed_formats = 1 << int(trt.TensorFormat.DLA_LINEAR)
    for index in range(network.num_outputs):
        tensor = network.get_output(index)
        tensor.dtype = dtype
        tensor.allowed_formats = 1 << int(layout)
