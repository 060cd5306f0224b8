"""Milliseconds per 640x480 frame of the detection pipeline on the CPU backend, split into stages.

    python benchmarks/bench_detection.py [--model models/detector/detector.yaml] [--frames 50] [--warmup 5]

Prints one JSON object: per stage (preprocess, inference, postprocess, total) the median, p90 and mean
in ms, with the model, input size, frames, detections per frame and the machine's CPU count. Frames are
synthetic street scenes (dla_perception.synthetic, fixed seeds) so the post-processing sees real
detections, not an empty image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def summarize(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {"p50": round(float(np.median(array)), 2), "p90": round(float(np.percentile(array, 90)), 2),
            "mean": round(float(array.mean()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "detector" / "detector.yaml")
    parser.add_argument("--frames", type=int, default=50, help="timed frames")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--distinct", type=int, default=8, help="distinct synthetic frames, cycled")
    args = parser.parse_args()

    from dla_perception.models.detection import DetectionPipeline
    from dla_perception.synthetic.scene import generate_frame

    images = [generate_frame(seed).left for seed in range(2_000_000, 2_000_000 + args.distinct)]
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": [], "total": []}
    detections = []
    with DetectionPipeline(args.model, cores=("cpu",)) as pipeline:
        for index in range(args.warmup + args.frames):
            found = pipeline.detect(images[index % len(images)], "rgb8")
            if index < args.warmup:
                continue
            times = pipeline.last_times
            stages["preprocess"].append(times.preprocess_ms)
            stages["inference"].append(times.inference_ms)
            stages["postprocess"].append(times.postprocess_ms)
            stages["total"].append(times.preprocess_ms + times.inference_ms + times.postprocess_ms)
            detections.append(len(found))
        engines = pipeline.manager.describe()
    print(json.dumps({
        "benchmark": "detection_cpu",
        "model": str(args.model),
        "image": [int(images[0].shape[1]), int(images[0].shape[0])],
        "network_input": [pipeline.description.input.width, pipeline.description.input.height],
        "frames": args.frames,
        "ms": {stage: summarize(values) for stage, values in stages.items()},
        "detections_per_frame": round(float(np.mean(detections)), 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "engines": {name: {"core": e["core"], "backend": e["backend"], "precision": e["precision"]}
                    for name, e in engines.get("engines", {}).items()},
    }))


if __name__ == "__main__":
    main()
