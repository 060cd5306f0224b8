"""Part of THE ONE SANCTIONED TEST DOUBLE (see tensorrt_double.py): building and calibration.

Sources for what the engine shows, cited where used:
- DLA subgraphs compile to `{ForeignNode[first...last]}` and come with per-tensor DLA I/O nodes named
  `<tensor> to nvm`, `<tensor> from nvm`, `<tensor> copy finish` (trtexec profile in NVIDIA/TensorRT#3143);
- GPU subgraphs compiled by Myelin are `{ForeignNode[...]}` too, with "LayerType": "Myelin" in DETAILED
  output and tactic 0x0000000000000000 (NVIDIA/TensorRT#2576, #2577, #2308);
- reformats are `Reformatting CopyNode for Input Tensor 0 to <layer>` with "LayerType": "Reformat"
  (NVIDIA/TensorRT#2592, #4048); DETAILED layer dicts carry Name, LayerType, Inputs, Outputs (Name,
  Location, Dimensions, Format/Datatype), TacticValue, StreamId, Metadata (trt-engine-explorer layer.py);
- builder log: "Layer '<name>' (<TYPE>): Unsupported on DLA. Switching this layer's device type to GPU."
  (NVIDIA-AI-IOT/jetson_dla_tutorial#3), "---------- Layers Running on DLA ----------", "[DlaLayer]
  {ForeignNode[...]}", "---------- Layers Running on GPU ----------", "[GpuLayer] SOFTMAX: prob" (trtexec
  logs; Jetson test suites expect "[V] [TRT] [DlaLayer]", so the double logs them at VERBOSE);
- "Calibrator won't be used in explicit precision mode." (TensorRT's warning for Q/DQ networks).
Unverified, so the code under test must not depend on them: the LayerType the double gives DLA
ForeignNodes ("DLA") and DLA I/O nodes ("NvmCopy"); no primary source shows those two values.
"""

from __future__ import annotations

import ctypes
import json
import sys
import types
from typing import Any

import numpy as np
from tensorrt_double_engine import PLAN_MAGIC
from tensorrt_double_types import (
    DataType,
    DeviceType,
    LayerType,
    ProfilingVerbosity,
    Severity,
    TensorFormat,
    nptype,
)

DLA_OPS = {
    "Conv",
    "ConvTranspose",
    "Relu",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "Add",
    "Sub",
    "Mul",
    "Max",
    "Min",
    "MaxPool",
    "AveragePool",
    "Concat",
    "BatchNormalization",
    "Clip",
    "Resize",
}
MYELIN_TYPES = {
    LayerType.SOFTMAX,
    LayerType.MATRIX_MULTIPLY,
    LayerType.REDUCE,
    LayerType.NORMALIZATION,
    LayerType.GATHER,
}
FUSED_INTO_CONV = {LayerType.ACTIVATION, LayerType.SCALE}


def major(version: str) -> int:
    return int(version.split(".")[0])


def dla_capable(layer: Any, version: str) -> bool:
    """IBuilderConfig.can_run_on_DLA in the double: the op set above; Q/DQ only from TensorRT 11.4 (DLA
    takes no explicit quantization on TensorRT 10: NVIDIA/TensorRT#2222, NVIDIA/Model-Optimizer#1661);
    parser-added Constant layers are "Unsupported on DLA" (jetson_dla_tutorial#3)."""
    if layer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE):
        return major(version) >= 11
    return layer._op in DLA_OPS


def _emit(logger: Any, severity: Severity, message: str) -> None:
    logger.log(Severity(severity), message)


def _call_like_the_binding(module: types.ModuleType, method: str, call: Any, failed: Any) -> Any:
    """pyInt8.cpp wraps every calibrator callback in try/catch: prints "[ERROR] Exception caught in
    <method>(): <what>" to std::cerr and returns its failure value (false, -1, nullptr)."""
    try:
        return call()
    except Exception as exc:
        line = f"[ERROR] Exception caught in {method}(): {exc}"
        module.double_state["stderr"].append(line)
        print(line, file=sys.stderr)
        return failed


def _calibrate(module: types.ModuleType, calibrator: Any, network: Any) -> dict[str, Any] | None:
    """What TensorRT does with an implicit-INT8 calibrator: use its cache, or pull batches, write a cache."""
    state = module.double_state
    cache = _call_like_the_binding(module, "read_calibration_cache", calibrator.read_calibration_cache, None)
    if cache:
        header = bytes(cache).split(b"\n", 1)[0]
        if not header.startswith(b"TRT-") or b"Calibration" not in header:
            return None
        return {"source": "cache", "batches": 0, "cache": bytes(cache).decode()}
    batch_size = _call_like_the_binding(module, "get_batch_size", calibrator.get_batch_size, -1)
    if not isinstance(batch_size, int) or batch_size < 1:
        return None
    names = [tensor.name for tensor in network._inputs]
    peak = dict.fromkeys(names, 0.0)
    batches = 0

    def one_batch() -> bool:
        result = calibrator.get_batch(names)
        if result is None or len(result) == 0:
            return False
        pointers = [int(p) for p in result]  # the binding casts to std::vector<size_t>
        for tensor, pointer in zip(network._inputs, pointers, strict=False):
            numpy_type = np.dtype(nptype(tensor.dtype))
            raw = ctypes.string_at(pointer, int(np.prod(tensor.shape)) * numpy_type.itemsize)
            values = np.frombuffer(raw, dtype=numpy_type)
            peak[tensor.name] = max(peak[tensor.name], float(np.abs(values).max(initial=0.0)))
        return True

    while _call_like_the_binding(module, "get_batch", one_batch, False):
        batches += 1
    if not batches:
        return None
    major_, minor, patch = (module.__version__.split(".") + ["0", "0"])[:3]
    text = f"TRT-{int(major_)}{int(minor):02d}{int(patch):02d}-EntropyCalibration2\n"
    text += "".join(
        f"{name}: {np.float32(value / 127.0).view(np.uint32):08x}\n" for name, value in peak.items()
    )
    _call_like_the_binding(
        module,
        "write_calibration_cache",
        lambda: calibrator.write_calibration_cache(memoryview(text.encode())),
        None,
    )
    state["calibration_caches"] = state.get("calibration_caches", []) + [text]
    return {"source": "batches", "batches": batches}


def build(module: types.ModuleType, logger: Any, network: Any, config: Any) -> bytes | None:
    """Builder.build_serialized_network: validate like TensorRT, place layers, compile the engine layers."""
    state = module.double_state
    flags = {module.BuilderFlag(flag).name for flag in config._flags}
    record: dict[str, Any] = {
        "default_device_type": config.default_device_type.name,
        "DLA_core": config.DLA_core,
        "flags": sorted(flags),
        "pools": {pool.name: size for pool, size in config._pools.items()},
        "profiling_verbosity": ProfilingVerbosity(config.profiling_verbosity).name,
        "network_flags": network.flags,
        "calibration": None,
        "input_formats": {t.name: (t.dtype.name, t.allowed_formats) for t in network._inputs},
        "output_formats": {t.name: (t.dtype.name, t.allowed_formats) for t in network._outputs},
        "layers": [layer.name for layer in network._layers],
    }
    state["builds"].append(record)
    strongly_typed = bool(network.flags & 2) or major(module.__version__) >= 11
    on_dla = config.default_device_type == DeviceType.DLA
    if on_dla:
        if not 0 <= config.DLA_core < state["num_dla_cores"]:
            _emit(logger, Severity.ERROR, f"DLA core {config.DLA_core} does not exist")
            return None
        if not strongly_typed and not flags & {"FP16", "INT8"}:
            _emit(logger, Severity.ERROR, "DLA needs FP16 or INT8 precision (DLA runs no FP32)")
            return None
    devices: dict[str, DeviceType] = {}
    for layer in network._layers:
        wanted = config.get_device_type(layer) if on_dla else DeviceType.GPU
        fits = dla_capable(layer, module.__version__)
        if strongly_typed and on_dla and layer.type not in (LayerType.QUANTIZE, LayerType.DEQUANTIZE):
            fits = fits and (
                all(t.dtype == DataType.HALF for t in network._inputs) or _quantized(layer, network)
            )
        devices[layer.name] = wanted if fits else DeviceType.GPU
        if wanted == DeviceType.DLA and not fits and layer._absorbed_by is None:
            if "GPU_FALLBACK" not in flags:
                _emit(
                    logger,
                    Severity.ERROR,
                    f"Layer '{layer.name}' ({layer.type.name}) cannot run on DLA and "
                    "GPU fallback is not enabled",
                )
                return None
            _emit(
                logger,
                Severity.WARNING,
                f"Layer '{layer.name}' ({layer.type.name}): Unsupported on DLA. "
                "Switching this layer's device type to GPU.",
            )
    has_qdq = any(layer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE) for layer in network._layers)
    if has_qdq:
        if config.int8_calibrator is not None:
            _emit(
                logger,
                Severity.WARNING,
                "Calibrator won't be used in explicit precision mode. Use quantization "
                "aware training to generate network with Quantize/Dequantize nodes.",
            )
        record["calibration"] = {"source": "explicit", "batches": 0}
    elif "INT8" in flags:
        calibrator = config.int8_calibrator
        if calibrator is None or not getattr(calibrator, "_double_initialised", False):
            _emit(logger, Severity.ERROR, "INT8 requested but no initialised calibrator was given")
            return None
        if on_dla and calibrator.get_algorithm().name != "ENTROPY_CALIBRATION_2":
            _emit(logger, Severity.ERROR, "DLA supports only IInt8EntropyCalibrator2")  # NVIDIA/TensorRT#2222
            return None
        record["calibration"] = _calibrate(module, calibrator, network)
        if record["calibration"] is None:
            _emit(logger, Severity.ERROR, "Calibration failure occurred with no scaling factors detected.")
            return None
    layers, log_lines = _compile(network, devices, on_dla, record["calibration"])
    for line in log_lines:
        _emit(logger, Severity.VERBOSE, line)
    plan = {
        "onnx": network.onnx_bytes.hex(),
        "built_for_dla_core": config.DLA_core if on_dla else None,
        "detailed": config.profiling_verbosity == ProfilingVerbosity.DETAILED,
        "layers": layers,
        "inputs": [[t.name, list(t.shape), t.dtype.name, _format_of(t)] for t in network._inputs],
        "outputs": [[t.name, list(t.shape), t.dtype.name, _format_of(t)] for t in network._outputs],
    }
    return PLAN_MAGIC + json.dumps(plan).encode()


def _quantized(layer: Any, network: Any) -> bool:
    """Strongly typed DLA (11.4+): a layer between Dequantize and Quantize layers computes in INT8."""
    producers = {out: other for other in network._layers for out in other._outputs}
    return bool(layer._inputs) and all(
        producers.get(name) is not None and producers[name].type == LayerType.DEQUANTIZE
        for name in layer._inputs
    )


def _format_of(tensor: Any) -> str:
    allowed = [fmt for fmt in TensorFormat if tensor.allowed_formats & (1 << int(fmt))]
    return (TensorFormat.LINEAR if TensorFormat.LINEAR in allowed or not allowed else allowed[0]).name


def _io(name: str, dims: Any = None) -> dict[str, Any]:
    return {
        "Name": name,
        "Location": "Device",
        "Dimensions": dims or [],
        "Format/Datatype": "Row major linear FP32",
    }


def _foreign(name: str, kind: str, inputs: list[str], outputs: list[str], tactic: str) -> dict[str, Any]:
    """A {ForeignNode[...]} layer as DETAILED JSON shows it (Myelin's tactic is 0x0000000000000000)."""
    return {"Name": name, "LayerType": kind, "Inputs": [_io(n) for n in inputs],
            "Outputs": [_io(n) for n in outputs], "TacticValue": tactic, "StreamId": 0, "Metadata": ""}


def _compile(
    network: Any, devices: dict[str, DeviceType], on_dla: bool, calibration: Any
) -> tuple[list[dict[str, Any]], list[str]]:
    """Engine layers (as the inspector lists them) and the builder's placement log lines."""
    real = [layer for layer in network._layers if layer._absorbed_by is None]
    groups: list[tuple[str, list[Any]]] = []  # ("dla"|"myelin"|"kernel", layers), in network order
    qdq = (LayerType.QUANTIZE, LayerType.DEQUANTIZE)
    pending: list[Any] = []  # GPU Q/DQ layers: explicit quantization fuses them into the next kernel
    for layer in real:
        device = devices[layer.name]
        if device == DeviceType.GPU and layer.type in qdq:
            pending.append(layer)
            continue
        if pending and device == DeviceType.GPU and layer.type not in MYELIN_TYPES:
            groups.append(("kernel", [*pending, layer]))  # e.g. "w + QuantizeLinear_461 + Conv_463"
            pending = []
            continue
        kind = "dla" if device == DeviceType.DLA else "myelin" if layer.type in MYELIN_TYPES else "kernel"
        fuse = groups and groups[-1][0] == kind and kind in ("dla", "myelin")
        fuse = fuse or (
            kind == "kernel"
            and groups
            and groups[-1][0] == "kernel"
            and layer.type in FUSED_INTO_CONV
            and groups[-1][1][-1].type == LayerType.CONVOLUTION
        )
        if fuse:
            groups[-1][1].append(layer)
        else:
            groups.append((kind, [layer]))
    if pending:  # trailing Q/DQ (network outputs): fused into the last kernel
        if groups and groups[-1][0] == "kernel":
            groups[-1][1].extend(pending)
        else:
            groups.append(("kernel", pending))
    layers: list[dict[str, Any]] = []
    dla_lines, gpu_lines = [], []
    for layer in network._layers:  # constants of GPU consumers stay GPU layers (their broadcast fused in)
        if layer.type != LayerType.CONSTANT or layer._absorbed_by is None:
            continue
        consumer = next(c for c in network._layers if c.name == layer._absorbed_by)
        if consumer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE):
            continue  # scales, zero points and quantized weights are folded into the fused kernels
        if devices.get(layer._absorbed_by, DeviceType.GPU) != DeviceType.GPU:
            continue  # folded into the DLA loadable as weights
        shuffles = [
            s.name
            for s in network._layers
            if s._absorbed_by == layer._absorbed_by
            and s.type == LayerType.SHUFFLE
            and s._inputs == [layer.name]
        ]
        name = " + ".join([layer.name, *shuffles])
        layers.append({"Name": name, "LayerType": "Constant", "Inputs": [], "Outputs": [_io(layer.name)]})
        gpu_lines.append(f"[GpuLayer] CONSTANT: {name}")
    after_dla = False
    for kind, members in groups:
        first, last = members[0], members[-1]
        produced = {o for x in members for o in x._outputs}
        inputs = list(dict.fromkeys(n for m in members for n in m._inputs if n not in produced))
        outputs = [o for o in last._outputs]
        if kind == "dla":
            foreign = f"{{ForeignNode[{first.name}...{last.name}]}}"
            layers += [
                {"Name": f"{n} to nvm", "LayerType": "NvmCopy", "Inputs": [_io(n)], "Outputs": []}
                for n in inputs
            ]
            layers.append(_foreign(foreign, "DLA", inputs, outputs, "0x0000000000000003"))
            layers += [
                {"Name": f"{n} from nvm", "LayerType": "NvmCopy", "Inputs": [], "Outputs": [_io(n)]}
                for n in outputs
            ]
            layers += [
                {"Name": f"{n} copy finish", "LayerType": "NvmCopy", "Inputs": [], "Outputs": []}
                for n in inputs + outputs
            ]
            dla_lines.append(f"[DlaLayer] {foreign}")
            after_dla = True
            continue
        if after_dla and on_dla:  # DLA hands FP16 over; the GPU layer wants its own format
            layers.append(
                {
                    "Name": f"Reformatting CopyNode for Input Tensor 0 to {first.name}",
                    "LayerType": "Reformat",
                    "Inputs": [_io(inputs[0] if inputs else first.name)],
                    "Outputs": [_io(first.name)],
                    "Origin": "REFORMAT",
                }
            )
        after_dla = False
        if kind == "myelin":
            name = f"{{ForeignNode[{first.name}...{last.name}]}}"
            layers.append(_foreign(name, "Myelin", inputs, outputs, "0x0000000000000000"))
            gpu_lines.append(f"[GpuLayer] MYELIN: {name}")
        else:
            name = " + ".join(m.name for m in members)
            compute = next((m for m in members if m.type not in qdq), first)
            layer_type = "CaskConvolution" if compute.type == LayerType.CONVOLUTION else "PointWiseV2"
            layers.append(
                {
                    "Name": name,
                    "LayerType": layer_type,
                    "ParameterType": first.type.name.title(),
                    "Inputs": [_io(n) for n in inputs],
                    "Outputs": [_io(n) for n in outputs],
                    "TacticValue": "0x00000000000003ea",
                    "StreamId": 0,
                    "Metadata": "".join(f"[ONNX Layer: {m.name}]" for m in members),
                }
            )
            gpu_lines.append(f"[GpuLayer] {first.type.name}: {name}")
    log_lines = []
    if on_dla:
        log_lines = [
            "---------- Layers Running on DLA ----------",
            *dla_lines,
            "---------- Layers Running on GPU ----------",
            *gpu_lines,
        ]
    return layers, log_lines
