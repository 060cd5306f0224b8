"""`dla-perception build-engine`: build one TensorRT plan for a DLA core or the GPU, print where layers run.

The same build the engine manager does at start-up (same flags, same plan cache format), run ahead of
time so a robot does not spend minutes building at boot, and so GPU fallback is visible before deploying.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dla_perception.tools.cli import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-engine",
        help="build a TensorRT plan for dla0, dla1 or the GPU and print its layer placement",
        description="Build one TensorRT plan from an ONNX model and print the placement report (DLA "
        "subgraphs, layers on the GPU, DLA I/O and reformat overhead), from the builder's own log and the "
        "engine inspector. Needs TensorRT 10 (JetPack 6) or 11.4.1+; exits 2 without it.",
    )
    parser.add_argument("onnx", type=Path, help="the ONNX model (static shapes)")
    parser.add_argument("--core", choices=("dla0", "dla1", "gpu"), default="dla0",
                        help="where the plan runs (default: dla0)")
    parser.add_argument("--fp16", action="store_true", help="FP16 precision (default on a DLA core)")
    parser.add_argument("--int8", action="store_true", help="INT8 precision (FP16 where INT8 is "
                        "impossible). A Q/DQ model (dla-perception quantize) is INT8 by itself and needs "
                        "nothing else; a float model needs --calib-cache with an existing cache or "
                        "--calib-data (implicit INT8, deprecated since TensorRT 10.1)")
    parser.add_argument("--calib-cache", type=Path, metavar="FILE",
                        help="INT8 calibration cache: read if it exists, written after calibrating")
    parser.add_argument("--calib-data", type=Path, metavar="NPZ",
                        help="calibration inputs: .npz with one array per input name, samples on the first "
                        "axis (each sample is one batch of the model's input shape)")
    parser.add_argument("--qdq", choices=("auto", "explicit", "translate"), default="auto",
                        help="a Q/DQ model on TensorRT 10: 'explicit' builds its Q/DQ layers as they are, "
                        "'translate' turns their scales into a calibration cache (Orin's DLA takes INT8 only "
                        "that way on TensorRT 10); auto = explicit on the GPU, translate on DLA. TensorRT "
                        "11.4.1+ always builds it strongly typed")
    parser.add_argument("--no-gpu-fallback", action="store_true",
                        help="pure DLA: leave GPU_FALLBACK unset, so a layer DLA cannot run fails the build, "
                        "and fail if TensorRT still puts any layer on the GPU")
    parser.add_argument("--dla-sram", type=int, default=1 << 20, metavar="BYTES",
                        help="DLA managed SRAM pool limit (power of two >= 4096; default 1 MiB)")
    parser.add_argument("--dla-native-io", action="store_true",
                        help="DLA-native I/O formats (no GPU reformat around the DLA call; for cuDLA or "
                        "consumers that feed DLA layouts); sets DIRECT_IO (deprecated in TensorRT 10.7), "
                        "which fails the build where such I/O would still need a reformat")
    parser.add_argument("--out", type=Path, metavar="PLAN",
                        help="where to write the plan (default: <model>-<core>-<precision>.plan here)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dla_perception.runtime.errors import EngineError
    from dla_perception.runtime.plan_cache import atomic_write
    from dla_perception.runtime.tensorrt_build import BuildOptions, build_plan, model_facts
    from dla_perception.runtime.tensorrt_engine import check_placement, import_tensorrt, inspect_plan
    from dla_perception.runtime.tensorrt_placement import format_report

    if not args.onnx.is_file():
        raise UsageError(f"ONNX file not found: {args.onnx}")
    if args.fp16 and args.int8:
        raise UsageError("choose one of --fp16 and --int8")
    try:
        quantized = model_facts(args.onnx)["quantized"]
    except Exception as exc:  # protobuf raises several types for a file that is not ONNX
        raise UsageError(f"{args.onnx} is not a readable ONNX model: {exc}") from None
    if args.int8 or (quantized and not args.fp16):
        precision = "int8"
    else:
        precision = "fp16" if args.fp16 or args.core.startswith("dla") else "fp32"
    if precision == "int8" and not quantized and args.calib_cache is None and args.calib_data is None:
        raise UsageError("--int8 needs --calib-cache FILE (existing) or --calib-data NPZ, or a Q/DQ model "
                         "(dla-perception quantize)")
    if args.dla_sram < 4096 or args.dla_sram & (args.dla_sram - 1):
        raise UsageError(f"--dla-sram must be a power of two >= 4096, got {args.dla_sram}")
    if args.dla_native_io and not args.core.startswith("dla"):
        raise UsageError("--dla-native-io applies to dla0/dla1 only")
    batches = _calibration_batches(args.calib_data, args.onnx) if args.calib_data else None
    try:
        trt = import_tensorrt()
    except EngineError as exc:
        raise UsageError(f"{exc}. Building plans needs TensorRT 10 on the target (a Jetson with JetPack 6); "
                         "the onnxruntime CPU backend needs no plan") from None

    options = BuildOptions(core=args.core, precision=precision, gpu_fallback=not args.no_gpu_fallback,
                           calibration_cache=args.calib_cache, dla_sram_bytes=args.dla_sram,
                           dla_native_io=args.dla_native_io, qdq=args.qdq)
    cuda = None
    if batches is not None:
        from polygraphy import cuda
    out = args.out or Path(f"{args.onnx.stem}-{args.core}-{precision}.plan")
    try:
        plan, info = build_plan(trt, args.onnx, options, calibration_batches=batches, cuda=cuda)
        report = inspect_plan(trt, plan, args.core, info)
        check_placement(report, args.onnx.stem, args.core, options.gpu_fallback)
    except EngineError as exc:
        print(f"dla-perception build-engine: {exc}")
        return 1
    try:
        atomic_write(out, plan)
    except OSError as exc:
        raise UsageError(f"cannot write the plan to {out}: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps({"plan": str(out), "core": args.core, "precision": precision, "mode": info["mode"],
                          "tensorrt": str(trt.__version__), "bytes": len(plan), "placement": report}))
    else:
        print(f"plan: {out} ({len(plan)} bytes, TensorRT {trt.__version__}, {args.core}, {precision}, "
              f"{info['mode']})")
        print(format_report(report))
    return 0


def _calibration_batches(path: Path, onnx_path: Path) -> list[dict]:
    """Per sample, {input name: array of the input's shape}; arrays may carry the batch axis or not."""
    import numpy as np
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    ranks = {value.name: len(value.type.tensor_type.shape.dim) for value in graph.input
             if value.name not in initializers}
    try:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read calibration data {path}: {exc}") from None
    if set(arrays) != set(ranks):
        raise UsageError(f"{path}: arrays {sorted(arrays)} do not match the model inputs {sorted(ranks)}")
    counts = {len(array) for array in arrays.values()}
    if len(counts) != 1:
        raise UsageError(f"{path}: every input needs the same number of samples")
    batches = []
    for index in range(counts.pop()):
        batch = {}
        for name, array in arrays.items():
            if array.ndim == ranks[name]:
                batch[name] = np.ascontiguousarray(array[index:index + 1])
            elif array.ndim == ranks[name] + 1:
                batch[name] = np.ascontiguousarray(array[index])
            else:
                raise UsageError(f"{path}: '{name}' has {array.ndim} dims for a rank-{ranks[name]} input")
        batches.append(batch)
    return batches
