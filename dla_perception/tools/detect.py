"""`dla-perception detect IMAGE... --model FILE`: run a detector on image files, print its detections.

The quickest way to try a model description (the project's detector or your own YOLOX/YOLOv8 export)
before wiring it into the detection node. With `--json`, one JSON object per image and line:
`{"image": PATH, "detections": [{"label", "score", "box": [x1, y1, x2, y2]}]}`, boxes in image pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dla_perception.tools.cli import UsageError

DEFAULT_MODEL = Path("models") / "detector" / "detector.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="run a detection model on image files and print label, score and box per detection",
        description="Run a detector described by a model description YAML (docs/detection.md) on image "
        "files and print each detection's label, score and box in image pixels.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (anything OpenCV reads)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model description YAML (default: the project's detector, "
                        f"share/dla_perception/{DEFAULT_MODEL})")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image and line")
    parser.add_argument("--score-threshold", type=float, default=None, metavar="S",
                        help="minimum score, 0..1 (default: the description's, else 0.25)")
    parser.add_argument("--iou-threshold", type=float, default=None, metavar="T",
                        help="NMS IoU threshold, 0..1 (default: the description's, else 0.45)")
    parser.add_argument("--cores", default="gpu,cpu",
                        help="cores to run on, in order of preference (default: gpu,cpu)")
    parser.set_defaults(handler=run)


def default_model() -> Path:
    """The shipped detector: from the installed share folder, else from the source checkout."""
    from dla_perception.share import share_directories

    candidates = [directory / DEFAULT_MODEL for directory in share_directories()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UsageError("no --model given and the project's detector was not found in "
                     + " or ".join(str(c) for c in candidates))


def run(args: argparse.Namespace) -> int:
    import cv2

    from dla_perception.models.detection import DetectionPipeline
    from dla_perception.models.detection_description import DescriptionError, ModelDescription

    for name, value in (("--score-threshold", args.score_threshold), ("--iou-threshold", args.iou_threshold)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise UsageError(f"{name} must be within [0, 1], got {value}")
    cores = tuple(core.strip() for core in args.cores.split(",") if core.strip())
    model = args.model if args.model is not None else default_model()
    try:
        description = ModelDescription.load(model)
    except DescriptionError as exc:
        raise UsageError(str(exc)) from None
    from dla_perception.runtime.errors import EngineError

    try:
        pipeline = DetectionPipeline(description, cores=cores)
    except (DescriptionError, EngineError, ValueError) as exc:  # ValueError: e.g. an unknown core name
        raise UsageError(f"cannot run {model}: {exc}") from None

    failures = 0
    with pipeline:
        for image_path in args.images:
            exists = Path(image_path).is_file()
            image = cv2.imread(image_path, cv2.IMREAD_COLOR) if exists else None
            if image is None:
                failures += 1
                message = "not an image OpenCV can read" if exists else "not found"
                if args.json:
                    print(json.dumps({"image": image_path, "error": message}))
                print(f"dla-perception detect: {image_path}: {message}", file=sys.stderr)
                continue
            detections = pipeline.detect(image, "bgr8", args.score_threshold, args.iou_threshold)
            if args.json:
                print(json.dumps({"image": image_path, "detections": [
                    {"label": d.label, "score": round(d.score, 4), "box": [round(v, 1) for v in d.box]}
                    for d in detections]}), flush=True)
                continue
            print(f"{image_path}: {len(detections)} detection(s)")
            for d in detections:
                x1, y1, x2, y2 = d.box
                print(f"  {d.label:<16} {d.score:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]")
    return 1 if failures else 0
