"""`dla-perception quantize MODEL.onnx --calibration BAG_OR_DIR... --out MODEL_int8.onnx`: explicit INT8.

Calibrates on frames read from rosbags through the pipelines' own preprocessing (dla/calibration_data.py)
and writes a Q/DQ model with onnxruntime's quantization tool (dla/quantize.py) that `build-engine` and the
engine manager build for TensorRT 10 (GPU: explicit; DLA: translated scales) and 11.4.1+ (strongly typed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="quantize an ONNX model to INT8 (Q/DQ) on frames from rosbags, for TensorRT and DLA",
        description="Insert Q/DQ nodes (int8, symmetric, per-tensor activations, per-channel weights) with "
        "onnxruntime's quantization tool, calibrated on frames read from rosbags through the pipeline's own "
        "preprocessing. The model's role is recognised from its inputs: the detector ([1, 3, H, W]), the "
        "proximity features network ([2, 3, H, W]) or the proximity head (left_features, right_shifted), "
        "whose calibration inputs come from the features network and the plane shifts on the bags' stereo "
        "pairs. Prints one JSON summary; `dla-perception dla-check OUT --strict` then checks DLA placement.",
    )
    add = parser.add_argument
    add("model", type=Path, help="the float ONNX model (static shapes)")
    add(
        "--calibration",
        type=Path,
        nargs="+",
        required=True,
        metavar="BAG_OR_DIR",
        help="rosbag2 folders (stereo, or monocular for the detector), folders of bags, or for the detector "
        "folders of images; use recordings like the robot's, never the evaluation data",
    )
    add("--out", type=Path, required=True, metavar="MODEL_int8.onnx", help="where to write the Q/DQ model")
    add(
        "--frames",
        type=int,
        default=64,
        metavar="N",
        help="calibration frames, spread over the sources "
        "(default 64; the proximity head gets one sample per head call: the shipped head answers one "
        "plane a call, 10 calibration planes a frame)",
    )
    add(
        "--method",
        choices=("entropy", "minmax", "percentile"),
        default="entropy",
        help="activation range calibration (default entropy, as TensorRT's IInt8EntropyCalibrator2)",
    )
    add(
        "--role",
        choices=("proximity_features", "proximity_head", "detector"),
        help="which pipeline feeds the model (default: recognised from its inputs)",
    )
    add(
        "--partner",
        type=Path,
        metavar="ONNX",
        help="proximity roles: the other network (default: features.onnx or head.onnx beside MODEL)",
    )
    add(
        "--description",
        type=Path,
        metavar="YAML",
        help="detector: its model description (default: the *.yaml beside MODEL that names it)",
    )
    add(
        "--quantize-outputs",
        action="store_true",
        help="also quantize the layers that produce the outputs "
        "(by default they stay float, FP16 on DLA: an output mixing ranges, like box offsets and scores, "
        "would share one INT8 scale)",
    )
    add("--force", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dla_perception.dla.calibration_data import (
        CalibrationDataError,
        detect_role,
        detector_inputs,
        proximity_inputs,
        read_frames,
    )
    from dla_perception.dla.quantize import quantize_model
    from dla_perception.runtime.tensorrt_qdq import TranslationError
    from dla_perception.tools.cli import UsageError

    if not args.model.is_file():
        raise UsageError(f"ONNX file not found: {args.model}")
    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    if args.out.exists() and not args.force:
        raise UsageError(f"{args.out} exists; pass --force to replace it")
    if args.out.resolve() == args.model.resolve():
        raise UsageError("--out must not be the input model")
    try:
        role = args.role or detect_role(args.model)
        frames = read_frames(args.calibration, args.frames, stereo=role != "detector")
        if role == "detector":
            samples = detector_inputs(args.model, frames, args.description)
        else:
            samples = proximity_inputs(args.model, role, frames, args.partner)
        summary = quantize_model(
            args.model, args.out, samples, method=args.method, float_outputs=not args.quantize_outputs
        )
    except (CalibrationDataError, TranslationError) as exc:
        raise UsageError(str(exc)) from None
    summary.update(role=role, frames=len(frames), sources=[str(p) for p in args.calibration])
    print(json.dumps(summary))
    return 0
